"""Shell: all SQL: migrations, the durable call-log writer and its spool, reports, campaigns, ACD
state, customers, recordings, and the private PostgreSQL cluster of the demo and tests."""

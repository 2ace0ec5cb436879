"""Shell: all SQL. Migrations, the durable call-log writer and its spool, reports, campaigns, ACD
state, recordings, customers."""

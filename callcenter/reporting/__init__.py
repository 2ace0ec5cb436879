"""Pure: call-log record types, KPIs, Erlang C/A, wallboard data, the HTML report and metrics."""

{#
    Per-stage limits learned from history: the stages' completed visits of the last 365 days, their
    percentiles, and the limit a run takes from them (int_deal_aging_stage_limits and the view
    report_deal_aging_stage_limits share these, so a run and `python -m runner suggest-limits` agree).
#}


{#
    True for a completed stage visit (one with an exit) that ended in the 365 days before an
    instant: its exit at or after the instant minus 365 days and before the instant. Visits with
    an infinite entry or exit have no length and never count.
#}
{% macro deal_aging_completed_in_year_before(entered_ts, exited_ts, as_of_ts) %}
    (
        isfinite({{ entered_ts }})
        and isfinite({{ exited_ts }})
        and {{ exited_ts }} >= {{ as_of_ts }} - interval '365 days'
        and {{ exited_ts }} < {{ as_of_ts }}
    )
{% endmacro %}


{# How many completed visits a group has, and the 50th, 75th and 90th percentile of their days. #}
{% macro deal_aging_visit_statistics(visit_days) %}
    count(*) as completed_visit_count,
    percentile_cont(0.5) within group (order by {{ visit_days }}) as p50_visit_days,
    percentile_cont(0.75) within group (order by {{ visit_days }}) as p75_visit_days,
    percentile_cont(0.9) within group (order by {{ visit_days }}) as p90_visit_days
{% endmacro %}


{# A stage's limit learned from its visits: the percentile rounded up to whole days, once the stage
   has 5 completed visits; null (the run's own limit applies) below that. #}
{% macro deal_aging_learned_limit(visit_count, percentile_days) %}
    case when {{ visit_count }} >= 5 then cast(ceil({{ percentile_days }}) as integer) end
{% endmacro %}

{#
    Fractional days from one instant to a later one, never negative: the reference query's
    greatest(0, extract(epoch from (to - from)) / 86400).
    An infinite instant (the CRM's columns allow 'infinity' and '-infinity') gives null, an
    unknown age: no interval can hold it (docs/decisions/bad-crm-rows.md).
    Not dbt.datediff: on PostgreSQL it counts whole units and casts timestamptz to timestamp,
    which drops fractions of a second and shifts by an hour across a daylight-saving change.
#}
{% macro days_elapsed(from_ts, to_ts) %}
    {{ return(adapter.dispatch('days_elapsed', 'deal_aging')(from_ts, to_ts)) }}
{% endmacro %}

{% macro default__days_elapsed(from_ts, to_ts) %}
    case
        when isfinite({{ from_ts }}) and isfinite({{ to_ts }})
            then greatest(0, extract(epoch from ({{ to_ts }} - {{ from_ts }})) / 86400)
    end
{% endmacro %}


{#
    Fractional working days from one instant to a later one, never negative: the working seconds
    between them (on the run's working-day clock, business_clock in int_deal_aging_current_deals)
    divided by 86400. from_clock and to_clock are the clock's rows of the instants' local dates;
    the working seconds up to an instant are its day's working_seconds_before, plus the seconds
    since its day began when that day is a working day. Infinite instants give null, as in
    days_elapsed.
#}
{% macro business_days_elapsed(from_ts, to_ts, from_clock, to_clock) %}
    case
        when not (isfinite({{ from_ts }}) and isfinite({{ to_ts }})) then null
        when {{ from_ts }} >= {{ to_ts }} then 0
        else (
            {{ to_clock }}.working_seconds_before
            + case when {{ to_clock }}.is_working_day then extract(epoch from {{ to_ts }} - {{ to_clock }}.day_start) else 0 end
            - {{ from_clock }}.working_seconds_before
            - case when {{ from_clock }}.is_working_day then extract(epoch from {{ from_ts }} - {{ from_clock }}.day_start) else 0 end
        ) / 86400
    end
{% endmacro %}

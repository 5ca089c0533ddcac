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

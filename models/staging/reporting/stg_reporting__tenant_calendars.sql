{#- The table is optional: when it does not exist every tenant works Monday to Friday in UTC.
    source() is called either way, so the lineage shows it. -#}
{%- set calendar = source('reporting', 'deal_aging_tenant_calendar') -%}
{%- set exists = execute and adapter.get_relation(
    database=calendar.database,
    schema=calendar.schema,
    identifier=calendar.identifier,
) is not none -%}

{% if exists %}

    select
        tenant_id,
        time_zone,
        weekend_days

    from {{ calendar }}

{% else %}

    select
        cast(null as uuid) as tenant_id,
        cast(null as text) as time_zone,
        cast(null as smallint[]) as weekend_days

    where false

{% endif %}

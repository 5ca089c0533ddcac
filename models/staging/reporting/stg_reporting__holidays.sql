{#- The table is optional: when it does not exist no tenant has holidays.
    source() is called either way, so the lineage shows it. -#}
{%- set holiday = source('reporting', 'deal_aging_holiday') -%}
{%- set exists = execute and adapter.get_relation(
    database=holiday.database,
    schema=holiday.schema,
    identifier=holiday.identifier,
) is not none -%}

{% if exists %}

    select
        tenant_id,
        holiday_date,
        name as holiday_name

    from {{ holiday }}

{% else %}

    select
        cast(null as uuid) as tenant_id,
        cast(null as date) as holiday_date,
        cast(null as text) as holiday_name

    where false

{% endif %}

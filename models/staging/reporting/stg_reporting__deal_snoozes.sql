{#- The table is optional: when it does not exist no deal is snoozed.
    source() is called either way, so the lineage shows it. -#}
{%- set snooze = source('reporting', 'deal_aging_snooze') -%}
{%- set exists = execute and adapter.get_relation(
    database=snooze.database,
    schema=snooze.schema,
    identifier=snooze.identifier,
) is not none -%}

{% if exists %}

    select
        tenant_id,
        deal_id,
        snoozed_until,
        reason as snooze_reason,
        snoozed_by,
        created_at as snoozed_at

    from {{ snooze }}

{% else %}

    select
        cast(null as uuid) as tenant_id,
        cast(null as uuid) as deal_id,
        cast(null as timestamptz) as snoozed_until,
        cast(null as text) as snooze_reason,
        cast(null as text) as snoozed_by,
        cast(null as timestamptz) as snoozed_at

    where false

{% endif %}

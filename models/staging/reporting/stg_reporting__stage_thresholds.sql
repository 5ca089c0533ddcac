{#- The table is optional: when it does not exist the report runs with the run's threshold alone.
    source() is called either way, so the lineage shows it. -#}
{%- set stage_threshold = source('reporting', 'deal_aging_stage_threshold') -%}
{%- set exists = execute and adapter.get_relation(
    database=stage_threshold.database,
    schema=stage_threshold.schema,
    identifier=stage_threshold.identifier,
) is not none -%}

{% if exists %}

    select
        tenant_id,
        pipeline_stage_id,
        cast(threshold_days as integer) as threshold_days

    from {{ stage_threshold }}

{% else %}

    select
        cast(null as uuid) as tenant_id,
        cast(null as uuid) as pipeline_stage_id,
        cast(null as integer) as threshold_days

    where false

{% endif %}

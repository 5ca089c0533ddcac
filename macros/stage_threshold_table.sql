{#
    The optional table of per-stage limits: `dbt run-operation deal_aging_create_stage_threshold_table`.
    The CRM or an analyst fills it; a stage with a row here is at risk past its own limit instead of
    the run's threshold_days. Reports work without it.
#}
{% macro deal_aging_create_stage_threshold_table() %}
    {% set relation = api.Relation.create(
        database=target.database, schema=target.schema, identifier='deal_aging_stage_threshold'
    ) %}
    {# `create schema if not exists` needs CREATE on the database even when the schema exists. #}
    {% set schema_exists = adapter.check_schema_exists(relation.database, relation.schema) %}
    {% call statement('deal_aging_create_stage_threshold_table') %}
        {% if not schema_exists %}
        create schema if not exists {{ adapter.quote(relation.schema) }};
        {% endif %}
        create table if not exists {{ relation }} (
            tenant_id uuid not null,
            pipeline_stage_id uuid not null,
            threshold_days integer not null constraint ck_stage_threshold_days check (threshold_days >= 0),
            primary key (tenant_id, pipeline_stage_id)
        );
    {% endcall %}
    {% do adapter.commit() %}
{% endmacro %}

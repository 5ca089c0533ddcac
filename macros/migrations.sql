{#
    The report's setup as ordered, idempotent, versioned migrations, recorded in
    <schema>.deal_aging_migration. `dbt run-operation deal_aging_setup` (and `python -m runner
    setup`, which also builds the tables and views) applies the pending ones; the hooks only
    check that none is pending. A new migration is appended with the next version; an applied
    one is never changed (docs/decisions/versioned-setup.md).
#}
{% macro deal_aging_migrations() %}
    {{ return([
        {'version': 1, 'name': 'report_run: the header table, or the columns, indexes and trigger this report adds to it'},
        {'version': 2, 'name': 'report_deal_aging_fact: no at_risk_amount <= total_amount check, negative amounts are counted'},
        {'version': 3, 'name': 'snoozed deals: report_deal_aging_fact.snoozed_deal_count; report_deal_aging_deal.is_snoozed, snoozed_until, snooze_reason'},
        {'version': 4, 'name': 'limits learned from history: report_deal_aging_deal.cumulative_days_in_stage'},
    ]) }}
{% endmacro %}


{% macro deal_aging_migration_relation() %}
    {{ return(api.Relation.create(
        database=target.database, schema=deal_aging_report_run_relation().schema, identifier='deal_aging_migration'
    )) }}
{% endmacro %}


{# The migrations not recorded as applied, in order; all of them when the record table is missing. #}
{% macro deal_aging_pending_migrations() %}
    {% set recorded = deal_aging_migration_relation() %}
    {% set exists = adapter.get_relation(
        database=recorded.database, schema=recorded.schema, identifier=recorded.identifier
    ) is not none %}
    {% set applied = run_query('select version from ' ~ recorded).columns[0].values() | list if exists else [] %}
    {{ return(deal_aging_migrations() | rejectattr('version', 'in', applied) | list) }}
{% endmacro %}


{% macro deal_aging_apply_migration(version) %}
    {% if version == 1 %}
        {% do deal_aging_ensure_report_run() %}
    {% elif version == 2 %}
        {% set fact = adapter.get_relation(
            database=target.database, schema=deal_aging_report_run_relation().schema, identifier='report_deal_aging_fact'
        ) %}
        {% if fact is not none %}
            {% set check_query %}
                select 1 from pg_constraint
                where conname = 'ck_report_deal_aging_fact_at_risk_amount'
                  and conrelid = {{ deal_aging_literal(fact.render()) }}::regclass
            {% endset %}
            {% if run_query(check_query) | length > 0 %}
                {% call statement('deal_aging_migration_2') %}
                    alter table {{ fact }} drop constraint ck_report_deal_aging_fact_at_risk_amount
                {% endcall %}
                {% do adapter.commit() %}
            {% endif %}
        {% endif %}
    {% elif version == 3 %}
        {% do deal_aging_add_columns('report_deal_aging_fact', [
            'snoozed_deal_count bigint not null default 0',
        ]) %}
        {% do deal_aging_add_columns('report_deal_aging_deal', [
            'is_snoozed boolean not null default false',
            'snoozed_until timestamptz',
            'snooze_reason text',
        ]) %}
    {% elif version == 4 %}
        {% do deal_aging_add_columns('report_deal_aging_deal', ['cumulative_days_in_stage numeric(10,2)']) %}
    {% endif %}
{% endmacro %}


{# New columns of a run-keyed table built before them; a table not built yet gets them from its model. #}
{% macro deal_aging_add_columns(identifier, columns) %}
    {% set table = adapter.get_relation(
        database=target.database, schema=deal_aging_report_run_relation().schema, identifier=identifier
    ) %}
    {% if table is not none %}
        {% call statement('deal_aging_add_columns') %}
            {{ deal_aging_set_timeouts() }}
            alter table {{ table }}
            {%- for column in columns %}
                add column if not exists {{ column }}{{ ',' if not loop.last }}
            {%- endfor %}
        {% endcall %}
        {% do adapter.commit() %}
    {% endif %}
{% endmacro %}


{#
    Applies the pending migrations in order, one at a time, recording each as it completes, then,
    with optional_tables, creates the optional tables that are missing.
    Setups from several processes take turns on a session-level advisory lock.
#}
{% macro deal_aging_setup(optional_tables=false) %}
    {% set recorded = deal_aging_migration_relation() %}
    {% do run_query("select pg_advisory_lock(hashtext('deal_aging.migrations'))") %}
    {% if not adapter.check_schema_exists(recorded.database, recorded.schema) %}
        {% do adapter.create_schema(api.Relation.create(database=recorded.database, schema=recorded.schema)) %}
    {% endif %}
    {% if adapter.get_relation(database=recorded.database, schema=recorded.schema, identifier=recorded.identifier) is none %}
        {% call statement('deal_aging_migration_table') %}
            create table if not exists {{ recorded }} (
                version integer primary key,
                name text not null,
                applied_at timestamptz not null default now()
            )
        {% endcall %}
        {% do adapter.commit() %}
    {% endif %}
    {% for migration in deal_aging_pending_migrations() %}
        {% do deal_aging_apply_migration(migration.version) %}
        {% call statement('deal_aging_record_migration') %}
            insert into {{ recorded }} (version, name)
            values ({{ migration.version }}, {{ deal_aging_literal(migration.name) }})
            on conflict (version) do nothing
        {% endcall %}
        {% do adapter.commit() %}
        {% do log('deal_aging migration ' ~ migration.version ~ ' applied: ' ~ migration.name, info=true) %}
    {% endfor %}
    {% if optional_tables %}
        {% do deal_aging_create_optional_tables() %}
    {% endif %}
    {% do run_query("select pg_advisory_unlock(hashtext('deal_aging.migrations'))") %}
{% endmacro %}

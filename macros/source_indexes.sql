{#
    Opt-in indexes on the CRM's own tables, for the report's queries:

        dbt run-operation deal_aging_create_source_indexes                          # concurrently
        dbt run-operation deal_aging_create_source_indexes --args '{dry_run: true}'  # print only
        dbt run-operation deal_aging_create_source_indexes --args '{concurrently: false}'

    The CRM owns these tables, so no report run creates them: its DBA runs this once (it is
    idempotent). What each is for, from EXPLAIN (ANALYZE, BUFFERS) (bench/plans/):

    ix_deal_aging_dpss_current: a run reads the current stage row of every deal of its tenant that
      sits in an open stage. Partial on is_current (a third of the rows), keyed by (tenant_id,
      pipeline_stage_id) so the scan starts from the tenant's open stages, and covering deal_id
      and entered_at so it is an index-only scan that never visits the table. Without it a run,
      of however small a tenant, reads all of deal_pipeline_stage_state or walks every deal of
      the tenant through ix_dpss_deal.

    How it runs. `create index concurrently` cannot run inside a transaction block, and dbt
    normally runs statements in one (statement() sends BEGIN). `dbt run-operation` starts its
    connection with a COMMIT (clear_transaction), and run_query() does not send BEGIN
    (auto_begin=false); psycopg2 then believes a transaction is open and sends no BEGIN of its own,
    so each run_query() below reaches PostgreSQL on its own and commits by itself, as from psql.
    Hence: every statement goes through run_query(), and nothing before them may open a
    transaction (no statement() call, no adapter.commit()). The build never blocks the CRM's
    writes; it takes longer than a plain build and, if interrupted, leaves an INVALID index,
    which "if not exists" would silently keep: such a leftover is dropped and built again.
    concurrently: false builds with a plain `create index if not exists` in one transaction
    instead: faster, but the table's writes wait for it (a SHARE lock; reads go on).
#}

{% macro deal_aging_source_indexes() %}
    {{ return([
        {
            'name': 'ix_deal_aging_dpss_current',
            'table': 'deal_pipeline_stage_state',
            'definition': '(tenant_id, pipeline_stage_id) include (deal_id, entered_at) where is_current',
        },
    ]) }}
{% endmacro %}


{% macro deal_aging_create_source_indexes(concurrently=true, dry_run=false) %}
    {% do deal_aging_check_vars() %}
    {% set schema = deal_aging_schema_name('source_schema', deal_aging_var('source_schema')) %}
    {% set keyword = 'concurrently ' if concurrently else '' %}
    {% set statements = [] %}

    {% for index in deal_aging_source_indexes() %}
        {% set qualified = adapter.quote(schema) ~ '.' ~ adapter.quote(index.name) %}
        {% if not dry_run %}
            {% set invalid_query %}
                select 1
                from pg_index i
                join pg_class c on c.oid = i.indexrelid
                join pg_namespace n on n.oid = c.relnamespace
                where n.nspname = '{{ schema }}' and c.relname = '{{ index.name }}' and not i.indisvalid
            {% endset %}
            {% if run_query(invalid_query) | length > 0 %}
                {% do log('index ' ~ index.name ~ ' is INVALID (an interrupted build): dropping it', info=true) %}
                {% do statements.append('drop index ' ~ keyword ~ 'if exists ' ~ qualified) %}
            {% endif %}
        {% endif %}
        {% do statements.append(
            'create index ' ~ keyword ~ 'if not exists ' ~ adapter.quote(index.name)
            ~ ' on ' ~ adapter.quote(schema) ~ '.' ~ adapter.quote(index.table) ~ ' ' ~ index.definition
        ) %}
    {% endfor %}

    {% for sql in statements %}
        {% if dry_run %}
            {% do log(sql ~ ';', info=true) %}
        {% elif concurrently %}
            {% do run_query(sql) %}
            {% do log(sql, info=true) %}
        {% else %}
            {% call statement('deal_aging_create_source_index', auto_begin=true) %}{{ sql }}{% endcall %}
            {% do log(sql, info=true) %}
        {% endif %}
    {% endfor %}
    {% if not dry_run and not concurrently %}
        {% do adapter.commit() %}
    {% endif %}
{% endmacro %}

{#
    concurrent_view: a view that concurrent `dbt run`s may all build at once.

    Why not dbt's `view`: it creates <name>__dbt_tmp, renames the live view to <name>__dbt_backup,
    renames the new one into place and drops the backup after the commit. Two runs at once (two
    analysts, or an analyst and the scheduler) share those fixed names and each decides from what
    it saw before the other moved, so all but one fail (four at once: three with 'relation
    "report_deal_aging_latest" already exists').

    Instead the view is replaced in place with `create or replace view`: one statement, so readers
    always see a whole view, and the grants and anything built on the view survive. Two
    `create or replace view`s still collide while the view does not exist yet (the second fails
    on a duplicate key in pg_type), and --full-refresh drops it, so each build first takes a
    transaction-level advisory lock on the view's name: concurrent builds take turns, and the
    commit lets go.

    A view that is already current is left alone. Replacing a view needs its ownership, and the
    analysts' `dbt run` builds these views too, as a role that may only read the CRM and write the
    report tables (README, "Roles and grants"). So every build records a digest of what defines the
    view (its compiled SQL, the enforced contract, the grants) in the view's comment,
    'deal_aging:<md5>', and a build that finds the same digest there, under the same lock, runs no
    DDL at all: dbt reports the model as "view unchanged". After a change (or with --full-refresh,
    which always rebuilds) its owner builds it once; any other role gets one line naming that owner
    instead of PostgreSQL's "must be owner". Enabling persist_docs for these views would replace
    the digest with the description, and every build would then rebuild them.

    `create or replace view` can only append columns. After the model drops, renames or retypes a
    column, rebuild it once with --full-refresh, which drops the view under the same lock first
    (it fails, and changes nothing, while other views depend on it).
#}

{% materialization concurrent_view, adapter='postgres' %}

    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type='view') -%}
    {%- set full_refresh = should_full_refresh() -%}
    {%- set replaceable = existing_relation is none or (existing_relation.is_view and not full_refresh) -%}
    {%- set grant_config = config.get('grants') -%}
    {%- set digest = deal_aging_view_digest(sql, grant_config) -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}

    -- `BEGIN` happens here: the lock, the hooks and the view share one transaction.
    {% call statement('concurrent_view_lock', auto_begin=True) -%}
        {{ deal_aging_set_timeouts() }}
        select pg_advisory_xact_lock(hashtext('{{ target_relation.render() | replace("'", "''") }}'))
    {%- endcall %}

    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- set built = deal_aging_view_build_state(target_relation) if existing_relation is not none else none -%}
    {%- set current = built is not none
        and existing_relation.is_view
        and not full_refresh
        and built.comment == digest -%}

    {% if built is not none and not current and not built.owned %}
        {% set why = 'a full refresh rebuilds it' if full_refresh else 'its definition changed since it was built' %}
        {% set command = 'dbt run --select ' ~ model.name ~ (' --full-refresh' if full_refresh else '') %}
        {{ exceptions.raise_compiler_error(
            target_relation.schema ~ "." ~ target_relation.identifier ~ ": " ~ why ~ ", and only its owner, "
            ~ built.owner ~ ", may replace it. Run `" ~ command ~ "` as " ~ built.owner
            ~ " (see Roles and grants in the README)."
        ) }}
    {% endif %}

    {% if current %}
        {% do store_raw_result(name='main', message='view unchanged', code='UNCHANGED', rows_affected=-1) %}
    {% else %}
        {% if not replaceable %}
            {% call statement('concurrent_view_drop') -%}
                drop {{ existing_relation.type | replace('_', ' ') }} {{ existing_relation.render() }}
            {%- endcall %}
        {% endif %}

        {% call statement('main') -%}
            {{ get_replace_view_sql(target_relation, sql) }}
        {%- endcall %}

        {% set should_revoke = should_revoke(existing_relation if replaceable else none, full_refresh_mode=False) %}
        {% do apply_grants(target_relation, grant_config, should_revoke=should_revoke) %}

        {% do persist_docs(target_relation, model) %}

        {% call statement('concurrent_view_digest') -%}
            comment on view {{ target_relation }} is '{{ digest }}'
        {%- endcall %}
    {% endif %}

    {{ run_hooks(post_hooks, inside_transaction=True) }}

    {{ adapter.commit() }}

    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [target_relation]}) }}

{% endmaterialization %}


{# What defines the view, hashed: its SQL, and the contract and grants a rebuild would check or apply. #}
{% macro deal_aging_view_digest(sql, grant_config) %}
    {%- set contract_columns = [] -%}
    {%- if config.get('contract').enforced -%}
        {%- for column in model['columns'].values() -%}
            {%- do contract_columns.append([column['name'], column.get('data_type'), column.get('constraints')]) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- set definition = {
        'sql_header': config.get('sql_header', none),
        'sql': sql,
        'contract': contract_columns,
        'grants': grant_config,
    } -%}
    {{ return('deal_aging:' ~ local_md5(tojson(definition, sort_keys=True))) }}
{% endmacro %}


{# The view's comment and owner, read from the catalog, which every role may read. #}
{% macro deal_aging_view_build_state(relation) %}
    {%- set state_query -%}
        select obj_description(c.oid, 'pg_class'), pg_get_userbyid(c.relowner), pg_has_role(c.relowner, 'MEMBER')
        from pg_class as c
        inner join pg_namespace as n on c.relnamespace = n.oid
        where n.nspname = '{{ relation.schema | replace("'", "''") }}'
          and c.relname = '{{ relation.identifier | replace("'", "''") }}'
    {%- endset -%}
    {%- set rows = run_query(state_query).rows -%}
    {{ return({'comment': rows[0][0], 'owner': rows[0][1], 'owned': rows[0][2]} if rows else none) }}
{% endmacro %}

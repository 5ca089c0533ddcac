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

    `create or replace view` can only append columns. After the model drops, renames or retypes a
    column, rebuild it once with --full-refresh, which drops the view under the same lock first
    (it fails, and changes nothing, while other views depend on it).
#}

{% materialization concurrent_view, adapter='postgres' %}

    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type='view') -%}
    {%- set replaceable = existing_relation is none
        or (existing_relation.is_view and not should_full_refresh()) -%}
    {%- set grant_config = config.get('grants') -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}

    -- `BEGIN` happens here: the lock, the hooks and the view share one transaction.
    {% call statement('concurrent_view_lock', auto_begin=True) -%}
        select pg_advisory_xact_lock(hashtext('{{ target_relation.render() | replace("'", "''") }}'))
    {%- endcall %}

    {{ run_hooks(pre_hooks, inside_transaction=True) }}

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

    {{ run_hooks(post_hooks, inside_transaction=True) }}

    {{ adapter.commit() }}

    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [target_relation]}) }}

{% endmaterialization %}

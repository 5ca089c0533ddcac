{#
    How long any statement of a report run may wait for a lock, and run at all, in seconds
    (0: no limit). A var given to this invocation wins, then the runner's setting for its own
    invocation (environment variable DEAL_AGING_<VAR NAME>), then the default in dbt_project.yml.
#}
{% macro deal_aging_timeout_seconds(name) %}
    {% if name in (invocation_args_dict.get('vars') or {}) %}
        {% set value = deal_aging_var(name) %}
    {% else %}
        {% set value = env_var('DEAL_AGING_' ~ (name | upper), '') or deal_aging_var(name) %}
    {% endif %}
    {% if value is string and modules.re.fullmatch('[0-9]{1,7}', value) %}
        {% set value = value | int %}
    {% endif %}
    {# PostgreSQL keeps both settings in milliseconds, in an integer. #}
    {% if value is not integer or value is boolean or value < 0 or value > 2147483 %}
        {% do deal_aging_invalid_var(name, 'a whole number of seconds from 0 (no limit) to 2147483', value) %}
    {% endif %}
    {{ return(value) }}
{% endmacro %}


{# The statements that bound the current transaction's waits; each statement block of a run starts with them. #}
{% macro deal_aging_set_timeouts() %}
    set local lock_timeout = '{{ deal_aging_timeout_seconds("lock_timeout_seconds") }}s';
    set local statement_timeout = '{{ deal_aging_timeout_seconds("statement_timeout_seconds") }}s';
{% endmacro %}

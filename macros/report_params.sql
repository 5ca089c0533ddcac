{#
    Report parameters arrive as dbt vars, and dbt renders vars into SQL text. Every value is
    validated and re-serialised here, before anything reaches SQL: a UUID is matched by pattern
    and lower-cased, a timestamp is parsed and printed back in ISO 8601, a count is an integer.
    So no character typed by a user ever ends up in a statement.

    Vars are read with deal_aging_var, never with var(): dbt's var() renders Jinja inside a string
    given with --vars, so a value could run queries or print environment variables.
#}

{# The report's vars: the keys of `vars:` in dbt_project.yml (tests/unit/test_vocabulary.py). #}
{% macro deal_aging_var_names() %}
    {{ return([
        'source_schema', 'tenant_id', 'threshold_days', 'cycle_threshold_days', 'period_start',
        'period_end', 'pipeline_id', 'stage_id', 'principal_type', 'principal_id', 'breakdown', 'run_id',
        'lock_timeout_seconds', 'statement_timeout_seconds', 'snoozes', 'aging_calendar', 'threshold_mode', 'changes',
    ]) }}
{% endmacro %}


{# A var's value, never rendered: the raw --vars value when given, else the project's default. #}
{% macro deal_aging_var(name) %}
    {% set given = invocation_args_dict.get('vars') or {} %}
    {% if given is mapping and name in given %}
        {{ return(given[name]) }}
    {% endif %}
    {{ return(var(name)) }}
{% endmacro %}


{# True when a value, or any string nested in it, holds Jinja that var() would render. #}
{% macro deal_aging_has_jinja(value) %}
    {% if value is string %}
        {{ return('{{' in value or '{%' in value or '{#' in value) }}
    {% elif value is mapping %}
        {% for key, item in value.items() if deal_aging_has_jinja(key) or deal_aging_has_jinja(item) %}
            {{ return(true) }}
        {% endfor %}
    {% elif value is iterable %}
        {% for item in value if deal_aging_has_jinja(item) %}
            {{ return(true) }}
        {% endfor %}
    {% endif %}
    {{ return(false) }}
{% endmacro %}


{# What no value's validation catches: Jinja, a typo'd name dbt would ignore, run_id beside parameters.
   The messages never repeat a value. #}
{% macro deal_aging_check_vars() %}
    {% set given = invocation_args_dict.get('vars') or {} %}
    {% set names = deal_aging_var_names() %}
    {% for name, value in given.items() %}
        {% if name not in names %}
            {% set plain = name is string and modules.re.fullmatch('[A-Za-z_][A-Za-z0-9_]{0,62}', name) %}
            {% set shown = name if plain else '(a name with characters other than letters, digits and underscores)' %}
            {{ exceptions.raise_compiler_error(
                "Unknown var " ~ shown ~ ": the report's vars are " ~ names | join(', ') ~ " (names are case-sensitive)."
            ) }}
        {% endif %}
        {% if deal_aging_has_jinja(value) %}
            {{ exceptions.raise_compiler_error(
                "Invalid var " ~ name ~ ": a value may not contain Jinja ({{, {% or {#)."
            ) }}
        {% endif %}
    {% endfor %}
    {# Where and how long to compute may go with run_id; what to compute is in the headers. #}
    {% set beside_run_id = ['run_id', 'source_schema', 'lock_timeout_seconds', 'statement_timeout_seconds'] %}
    {% set run_id = given.get('run_id') %}
    {% if run_id is not none and run_id != '' %}
        {% for name in names if name not in beside_run_id
            and given.get(name) is not none and given.get(name) != '' %}
            {{ exceptions.raise_compiler_error(
                "Invalid vars run_id and " ~ name ~ ": run_id recomputes existing runs with the parameters"
                ~ " recorded in their headers; give run_id alone."
            ) }}
        {% endfor %}
    {% endif %}
{% endmacro %}

{% macro deal_aging_invalid_var(name, expected, value) %}
    {{ exceptions.raise_compiler_error(
        "Invalid var " ~ name ~ ": expected " ~ expected ~ ", got " ~ (value | string | truncate(80, true)) ~ "."
    ) }}
{% endmacro %}


{% macro deal_aging_uuid(name, value) %}
    {% if value is none or value == '' %}
        {{ return(none) }}
    {% endif %}
    {% set pattern = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}' %}
    {% if value is not string or not modules.re.fullmatch(pattern, value) %}
        {% do deal_aging_invalid_var(name, 'a UUID', value) %}
    {% endif %}
    {{ return(value | lower) }}
{% endmacro %}


{% macro deal_aging_day_count(name, value) %}
    {% if value is none or value == '' %}
        {{ return(none) }}
    {% endif %}
    {% if value is string and modules.re.fullmatch('[0-9]{1,10}', value) %}
        {% set value = value | int %}
    {% endif %}
    {# 2147483647 is PostgreSQL's largest integer: a larger count could not be stored. #}
    {% if value is not integer or value is boolean or value < 0 or value > 2147483647 %}
        {% do deal_aging_invalid_var(name, 'a whole number of days, 0 or more', value) %}
    {% endif %}
    {{ return(value) }}
{% endmacro %}


{# given: typed by a person, so its year as written must be 1000-9998 to convert to UTC on every
   offset (as in runner/domain/params.py); a header read back in UTC may show the year 999 or 9999. #}
{% macro deal_aging_timestamp(name, value, given=false) %}
    {% if value is none or value == '' %}
        {{ return(none) }}
    {% endif %}
    {# YAML turns unquoted dates and timestamps into objects; their text form parses back. #}
    {% set text = value | string %}
    {% set pattern = '([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])'
        ~ '([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]{1,6})?)?'
        ~ '(Z|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])?)?' %}
    {% set match = modules.re.fullmatch(pattern, text) %}
    {# Jinja cannot catch the parser's error, so the pattern and the month length rule out
       every text that datetime.fromisoformat would reject. #}
    {% if match %}
        {% set year = match.group(1) | int %}
        {% set month = match.group(2) | int %}
        {% set leap = (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 %}
        {% set month_days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] %}
        {% set match = year >= 1 and (match.group(3) | int) <= month_days[month - 1] %}
        {% if match and given and not 1000 <= year <= 9998 %}
            {% do deal_aging_invalid_var(name, 'a timestamp with a year from 1000 to 9998', value) %}
        {% endif %}
    {% endif %}
    {% if not match %}
        {% do deal_aging_invalid_var(name, 'an ISO 8601 timestamp such as 2026-01-31T00:00:00Z', value) %}
    {% endif %}
    {% set parsed = modules.datetime.datetime.fromisoformat(text) %}
    {% if parsed.tzinfo is none %}
        {% set parsed = parsed.replace(tzinfo=modules.pytz.utc) %}
    {% endif %}
    {{ return(parsed) }}
{% endmacro %}


{% macro deal_aging_principal_type(name, value) %}
    {% if value is none or value == '' %}
        {{ return(none) }}
    {% endif %}
    {% if value is not string or (value | upper) not in ['USER', 'GROUP'] %}
        {% do deal_aging_invalid_var(name, 'USER or GROUP', value) %}
    {% endif %}
    {{ return(value | upper) }}
{% endmacro %}


{% macro deal_aging_breakdown(name, value) %}
    {% if value is none or value == '' %}
        {{ return(none) }}
    {% endif %}
    {% if value is not string or (value | lower) != 'owner' %}
        {% do deal_aging_invalid_var(name, 'owner (or nothing)', value) %}
    {% endif %}
    {{ return('owner') }}
{% endmacro %}


{# One of a few words, case-insensitive; nothing given is the first, the default. #}
{% macro deal_aging_choice(name, value, choices) %}
    {% if value is none or value == '' %}
        {{ return(choices[0]) }}
    {% endif %}
    {% if value is not string or (value | lower) not in choices %}
        {% do deal_aging_invalid_var(name, choices | join(' or '), value) %}
    {% endif %}
    {{ return(value | lower) }}
{% endmacro %}


{% macro deal_aging_snoozes(name, value) %}
    {{ return(deal_aging_choice(name, value, ['ignore', 'honor'])) }}
{% endmacro %}


{% macro deal_aging_aging_calendar(name, value) %}
    {{ return(deal_aging_choice(name, value, ['calendar', 'business'])) }}
{% endmacro %}


{% macro deal_aging_threshold_mode(name, value) %}
    {{ return(deal_aging_choice(name, value, ['fixed', 'p75', 'p90'])) }}
{% endmacro %}


{% macro deal_aging_changes(name, value) %}
    {{ return(deal_aging_choice(name, value, ['ignore', 'track'])) }}
{% endmacro %}


{% macro deal_aging_schema_name(name, value) %}
    {% if value is not string or not modules.re.fullmatch('[A-Za-z_][A-Za-z0-9_]{0,62}', value) %}
        {% do deal_aging_invalid_var(name, 'a plain schema name (letters, digits, underscores)', value) %}
    {% endif %}
    {{ return(value) }}
{% endmacro %}


{#
    The validated parameters of this invocation, from its vars. Raises a compiler error naming
    the first var that is wrong. Timestamps come back as timezone-aware datetimes.
#}
{% macro deal_aging_report_params() %}
    {% do deal_aging_check_vars() %}
    {% set params = {
        'tenant_id': deal_aging_uuid('tenant_id', deal_aging_var('tenant_id')),
        'threshold_days': deal_aging_day_count('threshold_days', deal_aging_var('threshold_days')),
        'cycle_threshold_days': deal_aging_day_count('cycle_threshold_days', deal_aging_var('cycle_threshold_days')),
        'period_start': deal_aging_timestamp('period_start', deal_aging_var('period_start'), given=true),
        'period_end': deal_aging_timestamp('period_end', deal_aging_var('period_end'), given=true),
        'pipeline_id': deal_aging_uuid('pipeline_id', deal_aging_var('pipeline_id')),
        'stage_id': deal_aging_uuid('stage_id', deal_aging_var('stage_id')),
        'principal_type': deal_aging_principal_type('principal_type', deal_aging_var('principal_type')),
        'principal_id': deal_aging_uuid('principal_id', deal_aging_var('principal_id')),
        'breakdown': deal_aging_breakdown('breakdown', deal_aging_var('breakdown')),
        'snoozes': deal_aging_snoozes('snoozes', deal_aging_var('snoozes')),
        'aging_calendar': deal_aging_aging_calendar('aging_calendar', deal_aging_var('aging_calendar')),
        'threshold_mode': deal_aging_threshold_mode('threshold_mode', deal_aging_var('threshold_mode')),
        'changes': deal_aging_changes('changes', deal_aging_var('changes')),
    } %}
    {% do deal_aging_schema_name('source_schema', deal_aging_var('source_schema')) %}
    {% if params.threshold_days is none %}
        {% do deal_aging_invalid_var('threshold_days', 'a whole number of days, 0 or more', 'nothing') %}
    {% endif %}
    {% if (params.principal_type is none) != (params.principal_id is none) %}
        {{ exceptions.raise_compiler_error(
            "Invalid vars principal_type and principal_id: give both (USER or GROUP, and a UUID) or neither."
        ) }}
    {% endif %}
    {% if params.breakdown is not none and params.principal_type is not none %}
        {{ exceptions.raise_compiler_error(
            "Invalid vars breakdown and principal_type: a breakdown by owner fills the principal columns itself; give one or the other."
        ) }}
    {% endif %}
    {% if params.threshold_mode != 'fixed' and params.aging_calendar == 'business' %}
        {{ exceptions.raise_compiler_error(
            "Invalid vars threshold_mode and aging_calendar: limits learned from history are in calendar days; give one or the other."
        ) }}
    {% endif %}
    {% if params.period_start is not none and params.period_end is not none
        and params.period_start >= params.period_end %}
        {{ exceptions.raise_compiler_error(
            "Invalid vars period_start and period_end: period_start (" ~ params.period_start.isoformat()
            ~ ") must be before period_end (" ~ params.period_end.isoformat() ~ ")."
        ) }}
    {% endif %}
    {{ return(params) }}
{% endmacro %}


{#
    The run_ids whose headers someone else (the runner) has written: the var run_id (one UUID or
    a list), else the environment variable DEAL_AGING_RUN_IDS (comma-separated). The runner uses
    the environment variable because a changed var makes dbt re-parse the whole project.
    Empty when dbt is to write the headers itself.
#}
{% macro deal_aging_given_run_ids() %}
    {% do deal_aging_check_vars() %}
    {% set given = deal_aging_var('run_id') %}
    {% if given is none or given == '' %}
        {% set given = env_var('DEAL_AGING_RUN_IDS', '') %}
        {% set given = given.split(',') if given else [] %}
    {% elif given is string %}
        {% set given = [given] %}
    {% elif given is not iterable or given is mapping %}
        {% do deal_aging_invalid_var('run_id', 'a UUID or a list of UUIDs', given) %}
    {% endif %}
    {% set run_ids = [] %}
    {% for run_id in given %}
        {% do run_ids.append(deal_aging_uuid('run_id', run_id | trim)) %}
    {% endfor %}
    {{ return(run_ids) }}
{% endmacro %}


{#
    The parameters two runs of a tenant must share to be compared, bar when they look (period_end):
    the staged columns of report_run that change which deals are counted or how. `changes` is not
    one: it adds a list and changes no figure.
#}
{% macro deal_aging_comparable_params() %}
    {{ return([
        'threshold_days', 'cycle_threshold_days', 'period_start', 'pipeline_id', 'stage_id',
        'principal_type', 'principal_id', 'breakdown', 'snoozes', 'aging_calendar', 'threshold_mode',
    ]) }}
{% endmacro %}

{#
    The runs this dbt invocation computes, read from their report_run headers while the models
    compile, every value validated as a var would be. See deal_aging_plan_constants.
#}
{% macro deal_aging_invocation_runs() %}
    {% set report_run = deal_aging_report_run_relation() %}
    {% if not execute or adapter.get_relation(
        database=report_run.database, schema=report_run.schema, identifier=report_run.identifier
    ) is none %}
        {{ return([]) }}
    {% endif %}
    {# Read and validated once per invocation: dbt builds `graph` afresh for each, and the
       invocation's runs never change during it (docs/decisions/plan-constants.md). #}
    {% if graph.get('deal_aging_invocation_runs', {}).get('invocation_id') == invocation_id %}
        {{ return(graph['deal_aging_invocation_runs']['runs']) }}
    {% endif %}
    {% set query %}
        select
            run_id::text,
            tenant_id::text,
            to_json(generated_at) #>> '{}',
            to_json(period_start) #>> '{}',
            to_json(period_end) #>> '{}',
            input_params::text
        from {{ report_run }}
        where {{ deal_aging_runs_of_this_invocation() }}
          and report_type = '{{ deal_aging_report_type() }}'
        order by run_id
    {% endset %}
    {% set runs = [] %}
    {% for row in run_query(query).rows %}
        {% set params = fromjson(row[5]) %}
        {% do runs.append({
            'run_id': deal_aging_uuid('run_id', row[0]),
            'tenant_id': deal_aging_uuid('tenant_id', row[1]),
            'threshold_days': deal_aging_day_count('threshold_days', params.get('threshold_days')),
            'cycle_threshold_days': deal_aging_day_count('cycle_threshold_days', params.get('cycle_threshold_days')),
            'period_start': deal_aging_timestamp('period_start', row[3]),
            'period_end': deal_aging_timestamp('period_end', row[4]),
            'pipeline_id': deal_aging_uuid('pipeline_id', params.get('pipeline_id')),
            'principal_type': deal_aging_principal_type('principal_type', params.get('principal_type')),
            'principal_id': deal_aging_uuid('principal_id', params.get('principal_id')),
            'stage_id': deal_aging_uuid('stage_id', params.get('stage_id')),
            'breakdown': deal_aging_breakdown('breakdown', params.get('breakdown')),
            'snoozes': deal_aging_snoozes('snoozes', params.get('snoozes')),
            'aging_calendar': deal_aging_aging_calendar('aging_calendar', params.get('aging_calendar')),
            'threshold_mode': deal_aging_threshold_mode('threshold_mode', params.get('threshold_mode')),
            'changes': deal_aging_changes('changes', params.get('changes')),
            'generated_at': deal_aging_timestamp('generated_at', row[2]),
        }) %}
    {% endfor %}
    {% do graph.update({'deal_aging_invocation_runs': {'invocation_id': invocation_id, 'runs': runs}}) %}
    {{ return(runs) }}
{% endmacro %}


{# A value as SQL text: a number, a timestamp, or a string quoted with its quotes doubled. #}
{% macro deal_aging_literal(value) %}
    {%- if value is none -%}
        null
    {%- elif value is number -%}
        {{ value }}
    {%- elif value.isoformat is defined -%}
        '{{ value.isoformat() }}'
    {%- else -%}
        '{{ value | string | replace("'", "''") }}'
    {%- endif -%}
{% endmacro %}


{#
    The parameters every run of this invocation shares, as SQL literals, by name; `tenant_ids`,
    the runs' tenants; `run_ids`, the runs themselves; `aging_calendars`, the clocks they age
    deals by; `threshold_modes`, how they set their limits; and `change_modes`, whether they track
    changes. int_deal_aging_current_deals
    writes them into its filters in place of the
    runs' columns, so PostgreSQL plans a run with its parameters as constants, as it plans the
    design's reference query; from the runs' columns alone the row estimates collapse
    (docs/decisions/plan-constants.md).
    Empty while parsing, in unit tests and when no run is being computed (compile): the filters
    then read the runs' columns only.
#}
{% macro deal_aging_plan_constants() %}
    {# A unit test gives the model its runs as rows: the invocation's own runs are not its. #}
    {% if model.resource_type == 'unit_test' %}
        {{ return({}) }}
    {% endif %}
    {% set runs = deal_aging_invocation_runs() %}
    {% if not runs %}
        {{ return({}) }}
    {% endif %}
    {% set types = {
        'period_start': 'timestamptz',
        'period_end': 'timestamptz',
        'pipeline_id': 'uuid',
        'stage_id': 'uuid',
        'principal_type': 'varchar(5)',
        'principal_id': 'uuid',
    } %}
    {% set constants = {} %}
    {% for name, data_type in types.items() %}
        {% set values = runs | map(attribute=name) | unique | list %}
        {% if values | length == 1 %}
            {% do constants.update({name: 'cast(' ~ deal_aging_literal(values[0]) ~ ' as ' ~ data_type ~ ')'}) %}
        {% endif %}
    {% endfor %}
    {% set tenants = runs | map(attribute='tenant_id') | unique | list %}
    {% do constants.update({'tenant_ids': tenants, 'run_ids': runs | map(attribute='run_id') | list}) %}
    {# Which clocks the runs age deals by: the working-day clock is built only when one needs it. #}
    {% do constants.update({'aging_calendars': runs | map(attribute='aging_calendar') | unique | list}) %}
    {# How they set their limits: the learned limits are joined only when one learns them. #}
    {% do constants.update({'threshold_modes': runs | map(attribute='threshold_mode') | unique | list}) %}
    {# Whether they track changes: the change list is computed only when one does. #}
    {% do constants.update({'change_modes': runs | map(attribute='changes') | unique | list}) %}
    {{ return(constants) }}
{% endmacro %}

{#- A run's filters read its parameters from the runs; where every run of the invocation shares
    a parameter, from a constant instead (macros/invocation_runs.sql says why). -#}
{%- set constants = deal_aging_plan_constants() -%}
{%- set period_start = constants.get('period_start', 'runs.period_start') -%}
{%- set period_end = constants.get('period_end', 'runs.period_end') -%}
{%- set pipeline_id = constants.get('pipeline_id', 'runs.pipeline_id') -%}
{%- set stage_id = constants.get('stage_id', 'runs.stage_id') -%}
{%- set principal_type = constants.get('principal_type', 'runs.principal_type') -%}
{%- set principal_id = constants.get('principal_id', 'runs.principal_id') -%}

with

runs as (

    select * from {{ ref('int_deal_aging_as_of') }}

),

deal_stage_states as (

    select * from {{ ref('stg_dyno_crm__deal_stage_states') }}

),

pipeline_stages as (

    select * from {{ ref('stg_dyno_crm__pipeline_stages') }}

),

deals as (

    select * from {{ ref('stg_dyno_crm__deals') }}

),

stage_thresholds as (

    select * from {{ ref('stg_reporting__stage_thresholds') }}

),

deal_snoozes as (

    select * from {{ ref('stg_reporting__deal_snoozes') }}

),

open_deals_in_scope as (

    select
        runs.run_id,
        runs.tenant_id,
        runs.cycle_threshold_days,
        runs.as_of_ts,
        deals.deal_id,
        deals.deal_name,
        deals.pipeline_id,
        deals.amount,
        deals.deal_created_at,
        deals.owned_by_user_id,
        deals.owned_by_group_id,
        deals.assigned_user_id,
        deals.assigned_group_id,
        deal_stage_states.pipeline_stage_id as stage_id,
        deal_stage_states.stage_entered_at,
        pipeline_stages.stage_state,
        -- Joined only for runs that honor snoozes, and only while the snooze lasts past as-of.
        deal_snoozes.snoozed_until,
        deal_snoozes.snooze_reason,
        -- A stage's own limit, where the optional table has one, replaces the run's threshold.
        coalesce(stage_thresholds.threshold_days, runs.threshold_days) as threshold_days,
        -- The fact row's principal: the run's filter, or with the owner breakdown the deal's
        -- owning user (null for deals without one, which get a row of their own).
        case when runs.breakdown = 'owner' then 'USER' else runs.principal_type end as principal_type,
        case when runs.breakdown = 'owner' then deals.owned_by_user_id else runs.principal_id end as principal_id

    from runs

    -- Every join also matches tenant_id: a row that points into another tenant never joins.
    inner join deal_stage_states
        on runs.tenant_id = deal_stage_states.tenant_id

    inner join pipeline_stages
        on
            deal_stage_states.pipeline_stage_id = pipeline_stages.pipeline_stage_id
            and deal_stage_states.tenant_id = pipeline_stages.tenant_id

    inner join deals
        on
            deal_stage_states.deal_id = deals.deal_id
            and deal_stage_states.tenant_id = deals.tenant_id

    left join stage_thresholds
        on
            deal_stage_states.pipeline_stage_id = stage_thresholds.pipeline_stage_id
            and deal_stage_states.tenant_id = stage_thresholds.tenant_id

    left join deal_snoozes
        on
            runs.snoozes = 'honor'
            and deal_stage_states.deal_id = deal_snoozes.deal_id
            and deal_stage_states.tenant_id = deal_snoozes.tenant_id
            and runs.as_of_ts < deal_snoozes.snoozed_until

    where
        deal_stage_states.is_current
        and pipeline_stages.stage_state not in ('DONE_SUCCESS', 'DONE_FAILED')
        {% if constants.tenant_ids | length == 1 %}
            and deal_stage_states.tenant_id = '{{ constants.tenant_ids[0] }}'
        {% elif constants.tenant_ids %}
            and deal_stage_states.tenant_id in ('{{ constants.tenant_ids | join("', '") }}')
        {% endif %}
        and ({{ period_start }} is null or deal_stage_states.stage_entered_at >= {{ period_start }})
        and ({{ period_end }} is null or deal_stage_states.stage_entered_at < {{ period_end }})
        and ({{ pipeline_id }} is null or deals.pipeline_id = {{ pipeline_id }})
        and ({{ stage_id }} is null or deal_stage_states.pipeline_stage_id = {{ stage_id }})
        and (
            {{ principal_type }} is null
            or (
                {{ principal_type }} = 'USER'
                and (deals.owned_by_user_id = {{ principal_id }} or deals.assigned_user_id = {{ principal_id }})
            )
            or (
                {{ principal_type }} = 'GROUP'
                and (deals.owned_by_group_id = {{ principal_id }} or deals.assigned_group_id = {{ principal_id }})
            )
        )

),

aged as (

    select
        *,
        {{ days_elapsed('stage_entered_at', 'as_of_ts') }} as days_in_stage,
        {{ days_elapsed('deal_created_at', 'as_of_ts') }} as days_in_cycle

    from open_deals_in_scope

),

flagged as (

    select
        *,
        -- Strictly greater: a deal exactly at its limit is not yet at risk; an unknown age never is.
        coalesce(days_in_stage > threshold_days, false) as is_stage_overdue,
        coalesce(days_in_cycle > cycle_threshold_days, false) as is_cycle_overdue

    from aged

),

snoozed as (

    select
        *,
        -- A snoozed deal would be at risk but is not: it is listed apart, outside the at-risk counts.
        (is_stage_overdue or is_cycle_overdue) and snoozed_until is not null as is_snoozed

    from flagged

),

final as (

    select
        run_id,
        tenant_id,
        deal_id,
        deal_name,
        pipeline_id,
        stage_id,
        principal_type,
        principal_id,
        threshold_days,
        cycle_threshold_days,
        amount,
        deal_created_at,
        stage_entered_at,
        owned_by_user_id,
        owned_by_group_id,
        assigned_user_id,
        assigned_group_id,
        days_in_stage,
        days_in_cycle,
        is_stage_overdue,
        is_cycle_overdue,
        is_snoozed,
        (is_stage_overdue or is_cycle_overdue) and not is_snoozed as is_at_risk,
        case when is_snoozed then snoozed_until end as snoozed_until,
        case when is_snoozed then snooze_reason end as snooze_reason

    from snoozed

)

select * from final

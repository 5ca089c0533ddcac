{#- Only runs with changes: track get rows; an invocation without one selects nothing at all. -#}
{%- set constants = deal_aging_plan_constants() -%}
{%- set tracking = 'track' in constants.get('change_modes', ['track']) -%}

with

runs as (

    select * from {{ ref('int_deal_aging_as_of') }}

),

-- Read in several places below: NOT MATERIALIZED lets each place filter the headers and the deal
-- lists by its own runs, where a materialized CTE would copy every run's rows first.
report_runs as not materialized (

    select * from {{ ref('stg_reporting__report_runs') }}

),

deal_lists as not materialized (

    select * from {{ ref('report_deal_aging_deal') }}

),

current_deals as (

    select * from {{ ref('int_deal_aging_current_deals') }}

),

deal_stage_states as (

    select * from {{ ref('stg_dyno_crm__deal_stage_states') }}

),

pipeline_stages as (

    select * from {{ ref('stg_dyno_crm__pipeline_stages') }}

),

{% if is_incremental() %}

    earlier_changes as (

        select * from {{ this }}

    ),

{% endif %}

tracking_runs as (

    select
        runs.*,
        report_runs.generated_at

    from runs

    inner join report_runs
        on runs.run_id = report_runs.run_id

    where
        {% if tracking %}
            runs.changes = 'track'
        {% else %}
            false
        {% endif %}

),

earlier_runs as (

    -- The tenant's SUCCEEDED runs generated before the tracking run with its parameters bar
    -- period_end, latest first: the first is its previous run, and each the previous of the one
    -- before it, so together they are its chain of previous runs.
    select
        tracking_runs.run_id,
        report_runs.run_id as earlier_run_id,
        report_runs.changes as earlier_changes,
        coalesce(report_runs.period_end, report_runs.generated_at) as earlier_as_of_ts,
        row_number() over (
            partition by tracking_runs.run_id
            order by report_runs.generated_at desc, report_runs.run_id desc
        ) as runs_back

    from tracking_runs

    inner join report_runs
        on
            tracking_runs.tenant_id = report_runs.tenant_id
            and tracking_runs.generated_at > report_runs.generated_at
            {% for column in deal_aging_comparable_params() %}
                and tracking_runs.{{ column }} is not distinct from report_runs.{{ column }}
            {% endfor %}

    where
        report_runs.report_type = '{{ deal_aging_report_type() }}'
        and report_runs.run_status = 'SUCCEEDED'

),

walk_limits as (

    -- The chain is walked back to the latest run that tracked changes too: its change rows say
    -- since when each of its deals has been at risk.
    select
        run_id,
        min(runs_back) filter (where earlier_changes = 'track') as tracked_runs_back

    from earlier_runs

    group by run_id

),

at_risk_now as (

    select
        tracking_runs.run_id,
        tracking_runs.as_of_ts,
        previous_runs.earlier_run_id as previous_run_id,
        deal_lists.tenant_id,
        deal_lists.deal_id,
        deal_lists.deal_name,
        deal_lists.pipeline_id,
        deal_lists.stage_id,
        deal_lists.amount

    from tracking_runs

    inner join deal_lists
        on tracking_runs.run_id = deal_lists.run_id

    left join earlier_runs as previous_runs
        on
            tracking_runs.run_id = previous_runs.run_id
            and previous_runs.runs_back = 1

    -- A snoozed deal is listed, but not at risk.
    where not deal_lists.is_snoozed

),

at_risk_before as (

    select
        tracking_runs.run_id,
        previous_runs.earlier_run_id as previous_run_id,
        deal_lists.tenant_id,
        deal_lists.deal_id,
        deal_lists.deal_name,
        deal_lists.pipeline_id,
        deal_lists.stage_id,
        deal_lists.amount

    from tracking_runs

    inner join earlier_runs as previous_runs
        on
            tracking_runs.run_id = previous_runs.run_id
            and previous_runs.runs_back = 1

    inner join deal_lists
        on previous_runs.earlier_run_id = deal_lists.run_id

    where not deal_lists.is_snoozed

),

still_at_risk as (

    select at_risk_now.*

    from at_risk_now

    inner join at_risk_before
        on
            at_risk_now.run_id = at_risk_before.run_id
            and at_risk_now.deal_id = at_risk_before.deal_id

),

streak_runs as (

    -- The earlier runs in which a deal still at risk was at risk too, numbered back from the
    -- previous run: no gap while the chain is unbroken.
    select
        still_at_risk.run_id,
        still_at_risk.deal_id,
        earlier_runs.earlier_run_id,
        earlier_runs.earlier_as_of_ts,
        earlier_runs.runs_back,
        earlier_runs.runs_back - row_number() over (
            partition by still_at_risk.run_id, still_at_risk.deal_id
            order by earlier_runs.runs_back
        ) as gap

    from still_at_risk

    inner join earlier_runs
        on still_at_risk.run_id = earlier_runs.run_id

    inner join walk_limits
        on still_at_risk.run_id = walk_limits.run_id

    inner join deal_lists
        on
            earlier_runs.earlier_run_id = deal_lists.run_id
            and still_at_risk.deal_id = deal_lists.deal_id

    where
        not deal_lists.is_snoozed
        and earlier_runs.runs_back <= coalesce(walk_limits.tracked_runs_back, earlier_runs.runs_back)

),

streak_starts as (

    -- The earliest run of the unbroken chain (or the tracking run it reached, which knows more).
    select distinct on (run_id, deal_id)
        run_id,
        deal_id,
        earlier_run_id,
        earlier_as_of_ts

    from streak_runs

    where gap = 0

    order by
        run_id asc,
        deal_id asc,
        runs_back desc

),

first_flagged as (

    select
        streak_starts.run_id,
        streak_starts.deal_id,
        {% if is_incremental() %}
            coalesce(earlier_changes.first_flagged_run_id, streak_starts.earlier_run_id) as first_flagged_run_id,
            coalesce(earlier_changes.first_flagged_at, streak_starts.earlier_as_of_ts) as first_flagged_at
        {% else %}
            streak_starts.earlier_run_id as first_flagged_run_id,
            streak_starts.earlier_as_of_ts as first_flagged_at
        {% endif %}

    from streak_starts

    {% if is_incremental() %}

        left join earlier_changes
            on
                streak_starts.earlier_run_id = earlier_changes.run_id
                and streak_starts.deal_id = earlier_changes.deal_id
                and earlier_changes.change_type in ('NEWLY_AT_RISK', 'STILL_AT_RISK')

    {% endif %}

),

at_risk_changes as (

    select
        at_risk_now.run_id,
        at_risk_now.tenant_id,
        at_risk_now.deal_id,
        at_risk_now.deal_name,
        at_risk_now.pipeline_id,
        at_risk_now.stage_id,
        at_risk_now.amount,
        at_risk_now.previous_run_id,
        cast(null as text) as recovery_reason,
        case
            when first_flagged.run_id is null then 'NEWLY_AT_RISK'
            else 'STILL_AT_RISK'
        end as change_type,
        -- A deal newly at risk is first flagged by this run.
        coalesce(first_flagged.first_flagged_run_id, at_risk_now.run_id) as first_flagged_run_id,
        coalesce(first_flagged.first_flagged_at, at_risk_now.as_of_ts) as first_flagged_at

    from at_risk_now

    left join first_flagged
        on
            at_risk_now.run_id = first_flagged.run_id
            and at_risk_now.deal_id = first_flagged.deal_id

),

recovered as (

    select
        at_risk_before.*,
        listed_now.is_snoozed as is_snoozed_now,
        current_stages.pipeline_stage_id as current_stage_id,
        current_stages.stage_state as current_stage_state,
        current_deals.deal_id is not null as is_in_scope_now

    from at_risk_before

    left join at_risk_now
        on
            at_risk_before.run_id = at_risk_now.run_id
            and at_risk_before.deal_id = at_risk_now.deal_id

    left join deal_lists as listed_now
        on
            at_risk_before.run_id = listed_now.run_id
            and at_risk_before.deal_id = listed_now.deal_id

    left join current_deals
        on
            at_risk_before.run_id = current_deals.run_id
            and at_risk_before.deal_id = current_deals.deal_id

    -- Where the deal is now in the CRM, whatever the run's filters; none when it is gone.
    left join lateral (
        select
            deal_stage_states.pipeline_stage_id,
            pipeline_stages.stage_state

        from deal_stage_states

        inner join pipeline_stages
            on
                deal_stage_states.pipeline_stage_id = pipeline_stages.pipeline_stage_id
                and deal_stage_states.tenant_id = pipeline_stages.tenant_id

        where
            deal_stage_states.tenant_id = at_risk_before.tenant_id
            and deal_stage_states.deal_id = at_risk_before.deal_id
            and deal_stage_states.is_current

        order by deal_stage_states.stage_entered_at desc

        limit 1
    ) as current_stages on true

    where at_risk_now.deal_id is null

),

recovered_changes as (

    select
        run_id,
        tenant_id,
        deal_id,
        deal_name,
        pipeline_id,
        stage_id,
        amount,
        previous_run_id,
        'RECOVERED' as change_type,
        cast(null as uuid) as first_flagged_run_id,
        cast(null as timestamptz) as first_flagged_at,
        case
            when current_stage_state = 'DONE_SUCCESS' then 'WON'
            when current_stage_state = 'DONE_FAILED' then 'LOST'
            when current_stage_id is null then 'OUT_OF_SCOPE'
            when current_stage_id != stage_id then 'MOVED_STAGE'
            when not is_in_scope_now then 'OUT_OF_SCOPE'
            when is_snoozed_now then 'SNOOZED'
            else 'BACK_UNDER_LIMIT'
        end as recovery_reason

    from recovered

),

all_changes as (

    -- In at_risk_changes' column order: a union matches columns by position.
    select * from at_risk_changes

    union all

    select
        run_id,
        tenant_id,
        deal_id,
        deal_name,
        pipeline_id,
        stage_id,
        amount,
        previous_run_id,
        recovery_reason,
        change_type,
        first_flagged_run_id,
        first_flagged_at

    from recovered_changes

),

final as (

    select
        run_id,
        tenant_id,
        deal_id,
        cast(deal_name as text) as deal_name,
        pipeline_id,
        stage_id,
        cast(amount as numeric(20, 2)) as amount,
        previous_run_id,
        cast(change_type as varchar(16)) as change_type,
        first_flagged_run_id,
        first_flagged_at,
        cast(recovery_reason as varchar(16)) as recovery_reason

    from all_changes

)

select * from final

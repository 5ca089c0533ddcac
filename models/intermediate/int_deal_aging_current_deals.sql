{#- A run's filters read its parameters from the runs; where every run of the invocation shares
    a parameter, from a constant instead (macros/invocation_runs.sql says why). -#}
{%- set constants = deal_aging_plan_constants() -%}
{%- set period_start = constants.get('period_start', 'runs.period_start') -%}
{%- set period_end = constants.get('period_end', 'runs.period_end') -%}
{%- set pipeline_id = constants.get('pipeline_id', 'runs.pipeline_id') -%}
{%- set stage_id = constants.get('stage_id', 'runs.stage_id') -%}
{%- set principal_type = constants.get('principal_type', 'runs.principal_type') -%}
{%- set principal_id = constants.get('principal_id', 'runs.principal_id') -%}
{#- The working-day clock is built only when a run of the invocation ages deals by it. -#}
{%- set business_days = 'business' in constants.get('aging_calendars', ['business']) -%}
{#- Limits learned from history are joined only when a run of the invocation learns them. -#}
{%- set learned_limits = constants.get('threshold_modes', ['p75']) | reject('equalto', 'fixed') | list | length > 0 -%}

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

tenant_calendars as (

    select * from {{ ref('stg_reporting__tenant_calendars') }}

),

holidays as (

    select * from {{ ref('stg_reporting__holidays') }}

),

stage_limits as (

    select * from {{ ref('int_deal_aging_stage_limits') }}

),

open_deals_in_scope as (

    select
        runs.run_id,
        runs.tenant_id,
        runs.cycle_threshold_days,
        runs.as_of_ts,
        runs.aging_calendar,
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
        -- A limit learned from the stage's visits, else the stage's own limit where the optional
        -- table has one, replaces the run's threshold.
        coalesce(
            {% if learned_limits %}
                case runs.threshold_mode
                    when 'p75'
                        then {{ deal_aging_learned_limit(
                            'stage_limits.completed_visit_count', 'stage_limits.p75_visit_days'
                        ) }}
                    when 'p90'
                        then {{ deal_aging_learned_limit(
                            'stage_limits.completed_visit_count', 'stage_limits.p90_visit_days'
                        ) }}
                end,
            {% endif %}
            stage_thresholds.threshold_days,
            runs.threshold_days
        ) as threshold_days,
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

    {% if learned_limits %}

        left join stage_limits
            on
                runs.run_id = stage_limits.run_id
                and deal_stage_states.pipeline_stage_id = stage_limits.stage_id

    {% endif %}

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
            -- On the deals alone: PostgreSQL carries an equality to a constant across the joins,
            -- not a list, and a list on the stage rows too, beside their tenant match with the
            -- runs and the stages, made it expect one stage row and scan the deals for every
            -- one of them (docs/decisions/plan-constants.md).
            and deals.tenant_id in ('{{ constants.tenant_ids | join("', '") }}')
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

{% if business_days %}

    business_runs as (

        select
            runs.run_id,
            runs.tenant_id,
            runs.as_of_ts,
            -- A tenant without a calendar works Monday to Friday in UTC.
            coalesce(tenant_calendars.time_zone, 'UTC') as time_zone,
            coalesce(tenant_calendars.weekend_days, '{6,7}') as weekend_days

        from runs

        left join tenant_calendars
            on runs.tenant_id = tenant_calendars.tenant_id

        where
            runs.aging_calendar = 'business'
            and isfinite(runs.as_of_ts)

    ),

    business_spans as (

        -- The clock runs from the earliest local date a deal of the run needs to the as-of date.
        select
            business_runs.run_id,
            cast(business_runs.as_of_ts at time zone business_runs.time_zone as date) as last_day,
            least(
                cast(business_runs.as_of_ts at time zone business_runs.time_zone as date),
                min(cast(open_deals_in_scope.stage_entered_at at time zone business_runs.time_zone as date))
                filter (where isfinite(open_deals_in_scope.stage_entered_at)),
                min(cast(open_deals_in_scope.deal_created_at at time zone business_runs.time_zone as date))
                filter (where isfinite(open_deals_in_scope.deal_created_at))
            ) as first_day

        from business_runs

        inner join open_deals_in_scope
            on business_runs.run_id = open_deals_in_scope.run_id

        group by
            business_runs.run_id,
            business_runs.as_of_ts,
            business_runs.time_zone

    ),

    business_days as (

        select
            business_runs.run_id,
            cast(calendar_days.local_day as date) as local_date,
            calendar_days.local_day at time zone business_runs.time_zone as day_start,
            (calendar_days.local_day + interval '1 day') at time zone business_runs.time_zone as day_end,
            -- A working day is a local date that is neither a weekend day nor a holiday of the tenant.
            extract(isodow from calendar_days.local_day) != all(business_runs.weekend_days)
            and holidays.holiday_date is null as is_working_day

        from business_runs

        inner join business_spans
            on business_runs.run_id = business_spans.run_id

        cross join
            lateral generate_series(
                -- Local dates as timestamps without a zone: the session's time zone never enters.
                cast(business_spans.first_day as timestamp),
                cast(business_spans.last_day as timestamp),
                interval '1 day'
            ) as calendar_days (local_day)

        left join holidays
            on
                business_runs.tenant_id = holidays.tenant_id
                and cast(calendar_days.local_day as date) = holidays.holiday_date

    ),

    business_clock as (

        select
            run_id,
            local_date,
            day_start,
            is_working_day,
            -- The working seconds of the run's clock before this local date: a day is as long as
            -- the time zone makes it (23 or 25 hours across a daylight-saving change).
            coalesce(
                sum(case when is_working_day then extract(epoch from day_end - day_start) end) over (
                    partition by run_id
                    order by local_date
                    rows between unbounded preceding and 1 preceding
                ),
                0
            ) as working_seconds_before

        from business_days

    ),

{% endif %}

aged as (

    select
        open_deals_in_scope.*,
        {% if business_days %}
            case
                when open_deals_in_scope.aging_calendar = 'business'
                    then {{ business_days_elapsed(
                        'open_deals_in_scope.stage_entered_at', 'open_deals_in_scope.as_of_ts',
                        'stage_clock', 'as_of_clock'
                    ) }}
                else {{ days_elapsed('open_deals_in_scope.stage_entered_at', 'open_deals_in_scope.as_of_ts') }}
            end as days_in_stage,
            case
                when open_deals_in_scope.aging_calendar = 'business'
                    then {{ business_days_elapsed(
                        'open_deals_in_scope.deal_created_at', 'open_deals_in_scope.as_of_ts',
                        'cycle_clock', 'as_of_clock'
                    ) }}
                else {{ days_elapsed('open_deals_in_scope.deal_created_at', 'open_deals_in_scope.as_of_ts') }}
            end as days_in_cycle
        {% else %}
            {{ days_elapsed('open_deals_in_scope.stage_entered_at', 'open_deals_in_scope.as_of_ts') }} as days_in_stage,
            {{ days_elapsed('open_deals_in_scope.deal_created_at', 'open_deals_in_scope.as_of_ts') }} as days_in_cycle
        {% endif %}

    from open_deals_in_scope

    {% if business_days %}

        left join business_runs
            on open_deals_in_scope.run_id = business_runs.run_id

        left join business_clock as as_of_clock
            on
                business_runs.run_id = as_of_clock.run_id
                and cast(business_runs.as_of_ts at time zone business_runs.time_zone as date) = as_of_clock.local_date

        left join business_clock as stage_clock
            on
                business_runs.run_id = stage_clock.run_id
                and cast(open_deals_in_scope.stage_entered_at at time zone business_runs.time_zone as date)
                = stage_clock.local_date

        left join business_clock as cycle_clock
            on
                business_runs.run_id = cycle_clock.run_id
                and cast(open_deals_in_scope.deal_created_at at time zone business_runs.time_zone as date)
                = cycle_clock.local_date

    {% endif %}

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
        as_of_ts,
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

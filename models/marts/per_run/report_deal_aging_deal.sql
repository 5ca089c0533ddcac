with

current_deals as (

    select * from {{ ref('int_deal_aging_current_deals') }}

),

deal_stage_states as (

    select * from {{ ref('stg_dyno_crm__deal_stage_states') }}

),

listed_deals as (

    select
        run_id,
        tenant_id,
        deal_id,
        cast(deal_name as text) as deal_name,
        pipeline_id,
        stage_id,
        cast(principal_type as varchar(5)) as principal_type,
        principal_id,
        owned_by_user_id,
        owned_by_group_id,
        assigned_user_id,
        assigned_group_id,
        cast(amount as numeric(20, 2)) as amount,
        stage_entered_at,
        cast(days_in_stage as numeric(10, 2)) as days_in_stage,
        cast(days_in_cycle as numeric(10, 2)) as days_in_cycle,
        threshold_days,
        cycle_threshold_days,
        cast(
            case
                when is_stage_overdue and is_cycle_overdue then 'BOTH'
                when is_stage_overdue then 'STAGE'
                else 'CYCLE'
            end
            as varchar(5)
        ) as at_risk_reason,
        is_snoozed,
        snoozed_until,
        cast(snooze_reason as text) as snooze_reason,
        -- The current visit in calendar days, whatever the run's clock, as the earlier ones.
        {{ days_elapsed('stage_entered_at', 'as_of_ts') }} as current_visit_days,
        as_of_ts

    from current_deals

    -- Snoozed deals are listed too, marked, outside the at-risk counts.
    where is_at_risk or is_snoozed

),

earlier_visits as (

    -- The deal's completed visits to the stage it is in now, up to the as-of instant.
    select
        listed_deals.run_id,
        listed_deals.deal_id,
        sum(
            {{ days_elapsed(
                'deal_stage_states.stage_entered_at',
                'least(deal_stage_states.stage_exited_at, listed_deals.as_of_ts)'
            ) }}
        ) as earlier_visit_days

    from listed_deals

    inner join deal_stage_states
        on
            listed_deals.tenant_id = deal_stage_states.tenant_id
            and listed_deals.deal_id = deal_stage_states.deal_id
            and listed_deals.stage_id = deal_stage_states.pipeline_stage_id

    where
        not deal_stage_states.is_current
        and deal_stage_states.stage_exited_at is not null
        and deal_stage_states.stage_entered_at < listed_deals.as_of_ts

    group by
        listed_deals.run_id,
        listed_deals.deal_id

),

final as (

    select
        listed_deals.run_id,
        listed_deals.tenant_id,
        listed_deals.deal_id,
        listed_deals.deal_name,
        listed_deals.pipeline_id,
        listed_deals.stage_id,
        listed_deals.principal_type,
        listed_deals.principal_id,
        listed_deals.owned_by_user_id,
        listed_deals.owned_by_group_id,
        listed_deals.assigned_user_id,
        listed_deals.assigned_group_id,
        listed_deals.amount,
        listed_deals.stage_entered_at,
        listed_deals.days_in_stage,
        listed_deals.days_in_cycle,
        listed_deals.threshold_days,
        listed_deals.cycle_threshold_days,
        listed_deals.at_risk_reason,
        listed_deals.is_snoozed,
        listed_deals.snoozed_until,
        listed_deals.snooze_reason,
        cast(
            listed_deals.current_visit_days + coalesce(earlier_visits.earlier_visit_days, 0) as numeric(10, 2)
        ) as cumulative_days_in_stage

    from listed_deals

    left join earlier_visits
        on
            listed_deals.run_id = earlier_visits.run_id
            and listed_deals.deal_id = earlier_visits.deal_id

)

select * from final

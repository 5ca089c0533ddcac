with

current_deals as (

    select * from {{ ref('int_deal_aging_current_deals') }}

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
        cast(snooze_reason as text) as snooze_reason

    from current_deals

    -- Snoozed deals are listed too, marked, outside the at-risk counts.
    where is_at_risk or is_snoozed

)

select * from listed_deals

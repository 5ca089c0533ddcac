{#- Keeps its WITH on purpose, unlike the other staging models: dbt_project.yml says why. -#}
with

source as (

    select * from {{ source('dyno_crm', 'deal') }}

),

renamed as (

    select
        id as deal_id,
        tenant_id,
        pipeline_id,
        name as deal_name,
        created_at as deal_created_at,
        owned_by_user_id,
        owned_by_group_id,
        assigned_user_id,
        assigned_group_id,
        -- NaN is no amount: it counts as 0, as a null amount does, instead of making every sum NaN.
        nullif(amount, 'NaN') as amount

    from source

)

select * from renamed

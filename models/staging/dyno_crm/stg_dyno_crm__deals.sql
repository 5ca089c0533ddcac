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
        amount,
        created_at as deal_created_at,
        owned_by_user_id,
        owned_by_group_id,
        assigned_user_id,
        assigned_group_id

    from source

)

select * from renamed

with

source as (

    select * from {{ source('dyno_crm', 'pipeline') }}

),

renamed as (

    select
        id as pipeline_id,
        tenant_id,
        name as pipeline_name,
        created_at as pipeline_created_at

    from source

)

select * from renamed

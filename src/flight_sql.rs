//! Flight SQL on the Flight port, for Grafana's FlightSQL data source, ADBC and JDBC drivers:
//! `CommandStatementQuery` (through `GetFlightInfo` then `DoGet`), `GetSqlInfo`,
//! `GetCatalogs`, `GetDbSchemas` and `GetTables`. The database is named by the `database`
//! call header (also `bucket-name`, `bucket` or `iox-namespace-name`, as InfluxDB 3 reads them).
//!
//! [`crate::flight`] hands it every call that is not an InfluxDB 3 JSON ticket. It reads only:
//! updates, prepared statements and transactions answer `UNIMPLEMENTED`.

use std::sync::Arc;

use arrow::datatypes::Schema;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTables, CommandStatementQuery, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use serde::{Deserialize, Serialize};
use tonic::{Request, Response, Status};

use crate::auth::{Action as AuthAction, Principal};
use crate::http::Api;

/// The catalog and schemas every database shows, as InfluxDB 3's do.
const CATALOG: &str = "public";
const SCHEMAS: &[&str] = &["information_schema", "iox", "system"];

pub struct WeirFlightSql {
    api: Arc<Api>,
}

/// What `GetSqlInfo` answers: the same for every connection, so built once.
fn sql_info() -> Result<&'static SqlInfoData, Status> {
    static INFO: std::sync::OnceLock<Result<SqlInfoData, String>> = std::sync::OnceLock::new();
    INFO.get_or_init(|| {
        let mut b = SqlInfoDataBuilder::new();
        b.append(SqlInfo::FlightSqlServerName, "Weir");
        b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        b.append(SqlInfo::FlightSqlServerArrowVersion, "59");
        b.append(SqlInfo::FlightSqlServerReadOnly, true);
        b.build().map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Status::internal(e.clone()))
}

/// What a statement's ticket carries back to `DoGet`.
#[derive(Serialize, Deserialize)]
struct Handle {
    database: String,
    query: String,
}

impl WeirFlightSql {
    pub fn new(api: Arc<Api>) -> WeirFlightSql {
        WeirFlightSql { api }
    }

    fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        super::flight::principal(&self.api, request)
    }

    /// The database the call names in its headers, which the caller may read.
    fn database<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let principal = self.principal(request)?;
        let md = request.metadata();
        let db = ["database", "bucket-name", "bucket", "iox-namespace-name"]
            .iter()
            .find_map(|k| md.get(*k).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()))
            .ok_or_else(|| Status::invalid_argument("name the database in the 'database' call header"))?
            .to_string();
        principal.require(AuthAction::Read(&db)).map_err(super::flight::auth_status)?;
        Ok(db)
    }

    fn info(cmd: impl ProstMessageExt, schema: &Schema, descriptor: FlightDescriptor) -> Result<Response<FlightInfo>, Status> {
        let ticket = Ticket::new(cmd.as_any().encode_to_vec());
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    fn batch_answer(batch: arrow::record_batch::RecordBatch) -> Response<<Self as FlightService>::DoGetStream> {
        let schema = batch.schema();
        let data = FlightDataEncoderBuilder::new().with_schema(schema).build(futures::stream::iter([Ok::<_, FlightError>(batch)]));
        Response::new(data.map_err(Status::from).boxed())
    }

    fn tables_of(&self, db: &str) -> Vec<(String, String, Arc<Schema>)> {
        let snapshot = self.api.catalog.snapshot();
        let mut out = Vec::new();
        if let Some(d) = snapshot.db(db) {
            for t in d.tables.values() {
                out.push(("iox".to_string(), t.name.clone(), pipeline::batch::table_schema(t)));
            }
        }
        out
    }
}

/// `schema` as Flight sends it: dictionary columns (tags) as their values, since the encoder
/// sends them so and clients check that each endpoint matches the announced schema.
fn hydrated(schema: &Schema) -> Schema {
    let fields: Vec<arrow::datatypes::Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            arrow::datatypes::DataType::Dictionary(_, values) => f.as_ref().clone().with_data_type(values.as_ref().clone()),
            _ => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

#[tonic::async_trait]
impl FlightSqlService for WeirFlightSql {
    type FlightService = WeirFlightSql;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let database = self.database(&request)?;
        let schema = self.api.query.schema_of(&database, &query.query).await.map_err(super::flight::query_status)?;
        let schema = hydrated(&schema);
        let handle = serde_json::to_vec(&Handle { database, query: query.query }).map_err(|e| Status::internal(e.to_string()))?;
        let ticket = TicketStatementQuery { statement_handle: handle.into() };
        Self::info(ticket, &schema, request.into_inner())
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let principal = self.principal(&request)?;
        let h: Handle = serde_json::from_slice(&ticket.statement_handle).map_err(|e| Status::invalid_argument(format!("invalid statement handle: {e}")))?;
        principal.require(AuthAction::Read(&h.database)).map_err(super::flight::auth_status)?;
        let running = self.api.query.recent.start("sql", "flight", &h.database, &h.query);
        let answer = super::flight::stream_sql(&self.api, &h.database, &h.query, None).await;
        Ok(Response::new(super::flight::recorded(running, answer)?))
    }

    async fn get_flight_info_sql_info(&self, query: CommandGetSqlInfo, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request)?;
        Self::info(query, &SqlInfoDataBuilder::schema().clone(), request.into_inner())
    }

    async fn do_get_sql_info(&self, query: CommandGetSqlInfo, request: Request<Ticket>) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.principal(&request)?;
        let batch = query.into_builder(sql_info()?).build().map_err(|e| Status::internal(e.to_string()))?;
        Ok(Self::batch_answer(batch))
    }

    async fn get_flight_info_catalogs(&self, query: CommandGetCatalogs, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request)?;
        let schema = query.into_builder().schema();
        Self::info(query, &schema, request.into_inner())
    }

    async fn do_get_catalogs(&self, query: CommandGetCatalogs, request: Request<Ticket>) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.principal(&request)?;
        let mut b = query.into_builder();
        b.append(CATALOG);
        Ok(Self::batch_answer(b.build().map_err(|e| Status::internal(e.to_string()))?))
    }

    async fn get_flight_info_schemas(&self, query: CommandGetDbSchemas, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request)?;
        let schema = query.clone().into_builder().schema();
        Self::info(query, &schema, request.into_inner())
    }

    async fn do_get_schemas(&self, query: CommandGetDbSchemas, request: Request<Ticket>) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.database(&request)?;
        let mut b = query.into_builder();
        for s in SCHEMAS {
            b.append(CATALOG, s);
        }
        Ok(Self::batch_answer(b.build().map_err(|e| Status::internal(e.to_string()))?))
    }

    async fn get_flight_info_tables(&self, query: CommandGetTables, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.principal(&request)?;
        let schema = query.clone().into_builder().schema();
        Self::info(query, &schema, request.into_inner())
    }

    async fn do_get_tables(&self, query: CommandGetTables, request: Request<Ticket>) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let db = self.database(&request)?;
        let mut b = query.into_builder();
        for (schema_name, table, schema) in self.tables_of(&db) {
            b.append(CATALOG, schema_name, table, "BASE TABLE", &schema).map_err(|e| Status::internal(e.to_string()))?;
        }
        Ok(Self::batch_answer(b.build().map_err(|e| Status::internal(e.to_string()))?))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

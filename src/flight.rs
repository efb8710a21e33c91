//! Arrow Flight on the HTTP port: what `influxdb3-python`, the JavaScript client and other
//! official InfluxDB 3 clients query with. `DoGet` takes InfluxDB 3's JSON ticket
//! (`{"database", "sql_query", "query_type": "sql" | "influxql", "params"}`), checks the token
//! in the `authorization` metadata as the HTTP routes do, and streams the answer as Arrow record
//! batches as they are computed.
//!
//! A ticket that is not InfluxDB 3's JSON, and `GetFlightInfo`, `DoAction` and `ListActions`,
//! go to Flight SQL ([`crate::flight_sql`]); the other Flight calls answer `UNIMPLEMENTED` naming
//! the call. It runs on the query runtime (tokio), never on a shard.

use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse, PollInfo,
    PutResult, SchemaResult, Ticket,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{Action as AuthAction, AuthError, Principal};
use crate::http::Api;
use crate::query::recent::Running;
use crate::query::QueryError;

/// The Flight service over the server's API state; Flight SQL's calls go to `sql`.
#[derive(Clone)]
pub struct WeirFlight {
    api: Arc<Api>,
    sql: Arc<crate::flight_sql::WeirFlightSql>,
}

/// The service as tonic serves it (a tower service over HTTP/2 requests).
pub fn service(api: Arc<Api>, sql: Arc<crate::flight_sql::WeirFlightSql>) -> FlightServiceServer<WeirFlight> {
    FlightServiceServer::new(WeirFlight { api, sql })
        // Large answers are streamed in batches; a client may send a ticket of any size it likes
        // only up to this.
        .max_decoding_message_size(16 << 20)
}

/// InfluxDB 3's ticket (`database` also as `db`, `sql_query` also as `query`).
#[derive(Debug, Deserialize)]
struct TicketJson {
    #[serde(alias = "db")]
    database: String,
    #[serde(alias = "query")]
    sql_query: String,
    #[serde(default)]
    query_type: Option<String>,
    #[serde(default)]
    params: Option<serde_json::Map<String, serde_json::Value>>,
}

pub(crate) fn auth_status(e: AuthError) -> Status {
    if e.is_forbidden() {
        Status::permission_denied(e.to_string())
    } else {
        Status::unauthenticated(e.to_string())
    }
}

pub(crate) fn query_status(e: QueryError) -> Status {
    match e {
        QueryError::DatabaseNotFound(_) => Status::not_found(e.to_string()),
        QueryError::ReadOnly(_) | QueryError::Invalid(_) => Status::invalid_argument(e.to_string()),
        QueryError::ResourcesExhausted(_) => Status::resource_exhausted(e.to_string()),
        QueryError::Timeout(_) => Status::deadline_exceeded(e.to_string()),
        QueryError::Internal(_) => Status::internal(e.to_string()),
    }
}

/// Who sent a Flight call: its `authorization` metadata, read as the HTTP `Authorization`
/// header is (Flight SQL's calls too).
pub(crate) fn principal<T>(api: &Api, request: &Request<T>) -> Result<Principal, Status> {
    let headers = request.metadata().clone().into_headers();
    api.auth.identify(&headers, &hyper::Uri::from_static("/flight"), false).map_err(auth_status)
}

/// SQL's answer as Flight data, streamed as DataFusion computes it (Flight SQL's statements too).
pub(crate) async fn stream_sql(
    api: &Api,
    db: &str,
    sql: &str,
    params: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<Stream<FlightData>, Status> {
    let (schema, stream) = api.query.sql_stream(db, sql, params).await.map_err(query_status)?;
    let data = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(stream.map_err(|e| FlightError::Tonic(Box::new(query_status(e)))));
    Ok(data.map_err(Status::from).boxed())
}

/// `answer` with its `system.queries` record ended: at once when it failed, else with the
/// stream, at its first error or at its end.
pub(crate) fn recorded(running: Running, answer: Result<Stream<FlightData>, Status>) -> Result<Stream<FlightData>, Status> {
    let data = match answer {
        Ok(d) => d,
        Err(e) => {
            running.finish(Some(e.message().to_string()));
            return Err(e);
        }
    };
    let running = Arc::new(parking_lot::Mutex::new(Some(running)));
    let at_error = running.clone();
    Ok(data
        .inspect_err(move |e| {
            if let Some(r) = at_error.lock().take() {
                r.finish(Some(e.message().to_string()));
            }
        })
        .chain(
            futures::stream::once(async move {
                if let Some(r) = running.lock().take() {
                    r.finish(None);
                }
            })
            .filter_map(|()| std::future::ready(None)),
        )
        .boxed())
}

impl WeirFlight {
    fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        principal(&self.api, request)
    }

    /// The answer to a ticket, as Flight data streamed as it is computed.
    async fn answer(&self, principal: &Principal, ticket: &TicketJson) -> Result<Stream<FlightData>, Status> {
        let batches: BoxStream<'static, Result<arrow::record_batch::RecordBatch, FlightError>> =
            match ticket.query_type.as_deref().unwrap_or("sql").to_ascii_lowercase().as_str() {
                "sql" => return stream_sql(&self.api, &ticket.database, &ticket.sql_query, ticket.params.as_ref()).await,
                "influxql" => {
                    let rows = crate::http::influxql_rows(&self.api, principal, &ticket.database, &ticket.sql_query)
                        .await
                        .map_err(|e| Status::invalid_argument(e.to_string()))?;
                    futures::stream::iter(rows.into_iter().map(Ok)).boxed()
                }
                other => return Err(Status::invalid_argument(format!("invalid query_type '{other}': expected sql or influxql"))),
            };
        Ok(FlightDataEncoderBuilder::new().build(batches).map_err(Status::from).boxed())
    }

    fn unimplemented<T>(what: &str) -> Result<T, Status> {
        Err(Status::unimplemented(format!("{what} is not supported; query with DoGet and an InfluxDB 3 ticket")))
    }
}

type Stream<T> = BoxStream<'static, Result<T, Status>>;

#[tonic::async_trait]
impl FlightService for WeirFlight {
    type HandshakeStream = Stream<HandshakeResponse>;
    type ListFlightsStream = Stream<FlightInfo>;
    type DoGetStream = Stream<FlightData>;
    type DoPutStream = Stream<PutResult>;
    type DoExchangeStream = Stream<FlightData>;
    type DoActionStream = Stream<arrow_flight::Result>;
    type ListActionsStream = Stream<ActionType>;

    /// Clients that handshake first get an empty answer; the token rides on every call.
    async fn handshake(&self, request: Request<Streaming<HandshakeRequest>>) -> Result<Response<Self::HandshakeStream>, Status> {
        self.principal(&request)?;
        let answer = HandshakeResponse { protocol_version: 0, payload: Default::default() };
        Ok(Response::new(futures::stream::iter([Ok(answer)]).boxed()))
    }

    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let ticket = &request.get_ref().ticket;
        if !ticket.trim_ascii_start().starts_with(b"{") {
            if <arrow_flight::sql::Any as prost::Message>::decode(&ticket[..]).is_err() {
                self.principal(&request)?;
                return Err(Status::invalid_argument(
                    "invalid ticket: expected InfluxDB 3's JSON {\"database\": ..., \"sql_query\": ..., \"query_type\": \"sql\" or \"influxql\"}, or a Flight SQL ticket",
                ));
            }
            return FlightService::do_get(&*self.sql, request).await;
        }
        let principal = self.principal(&request)?;
        let ticket: TicketJson = serde_json::from_slice(&request.get_ref().ticket).map_err(|e| {
            Status::invalid_argument(format!(
                "invalid ticket: {e}; expected JSON {{\"database\": ..., \"sql_query\": ..., \"query_type\": \"sql\" or \"influxql\"}}"
            ))
        })?;
        principal.require(AuthAction::Read(&ticket.database)).map_err(auth_status)?;
        let kind = if ticket.query_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("influxql")) { "influxql" } else { "sql" };
        let running = self.api.query.recent.start(kind, "flight", &ticket.database, &ticket.sql_query);
        let answer = self.answer(&principal, &ticket).await;
        Ok(Response::new(recorded(running, answer)?))
    }

    async fn list_flights(&self, _: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        Self::unimplemented("ListFlights")
    }
    async fn get_flight_info(&self, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        FlightService::get_flight_info(&*self.sql, request).await
    }
    async fn poll_flight_info(&self, _: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        Self::unimplemented("PollFlightInfo")
    }
    async fn get_schema(&self, _: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        Self::unimplemented("GetSchema")
    }
    async fn do_put(&self, _: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        Self::unimplemented("DoPut (write line protocol over HTTP)")
    }
    async fn do_exchange(&self, _: Request<Streaming<FlightData>>) -> Result<Response<Self::DoExchangeStream>, Status> {
        Self::unimplemented("DoExchange")
    }
    async fn do_action(&self, request: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        FlightService::do_action(&*self.sql, request).await
    }
    async fn list_actions(&self, request: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        FlightService::list_actions(&*self.sql, request).await
    }
}

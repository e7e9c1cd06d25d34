//! OpenTelemetry export (OTLP over gRPC) of the node's spans, off unless `[telemetry]
//! otlp_endpoint` is set. The spans are the hops [`TraceContext`] already numbers: a server span
//! per score, decision and peer query received, a client span per peer query sent. They are
//! exported with exactly those ids, so the trace id in the logs is the one in the collector, and
//! a peer's server span is the child of the asking node's client span (the `traceparent` it sent).

use std::{
    cell::Cell,
    sync::OnceLock,
    time::{Duration, SystemTime},
};

use opentelemetry::{
    trace::{Span, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer},
    Context, KeyValue,
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    trace::{IdGenerator, RandomIdGenerator, SdkTracer, SdkTracerProvider},
    Resource,
};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::trace::TraceContext;

/// `[telemetry]`: where spans go.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySection {
    /// An OTLP/gRPC collector, e.g. `http://127.0.0.1:4317`; no spans are exported when unset.
    /// The batch exporter's standard `OTEL_BSP_*` variables apply (e.g. `OTEL_BSP_SCHEDULE_DELAY`).
    pub otlp_endpoint: Option<String>,
}

impl TelemetrySection {
    /// Refuses an endpoint the exporter could not dial: it must be an `http://` or `https://`
    /// URL with a host.
    pub(crate) fn check(&self) -> Result<(), String> {
        let Some(e) = &self.otlp_endpoint else { return Ok(()) };
        match e.parse::<http::Uri>() {
            Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => Ok(()),
            _ => Err(format!(
                "telemetry.otlp_endpoint {e:?} is not an http:// or https:// URL, e.g. http://127.0.0.1:4317"
            )),
        }
    }
}

/// Why export could not be switched on.
#[derive(Debug, thiserror::Error)]
#[error("telemetry.otlp_endpoint {endpoint:?}: {why}")]
pub(crate) struct OtlpError {
    endpoint: String,
    why: String,
}

/// Which side of a call a span is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Side {
    /// A call this node answers.
    Server,
    /// A call this node makes.
    Client,
}

/// The process's exporter: one per process, like the log subscriber (in-process test nodes
/// share it and tell themselves apart by the `bureau.institution` attribute).
struct Export {
    endpoint: String,
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

static EXPORT: OnceLock<Export> = OnceLock::new();

thread_local! {
    /// The ids the next span started on this thread takes (see [`GivenIds`]).
    static NEXT_IDS: Cell<Option<([u8; 16], [u8; 8])>> = const { Cell::new(None) };
}

/// Gives a span the ids of the [`TraceContext`] it stands for (set just before it starts, on
/// the same thread); random ones otherwise.
#[derive(Debug)]
struct GivenIds;

impl IdGenerator for GivenIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_IDS
            .with(Cell::get)
            .map_or_else(|| RandomIdGenerator::default().new_trace_id(), |(t, _)| TraceId::from_bytes(t))
    }

    fn new_span_id(&self) -> SpanId {
        NEXT_IDS
            .with(Cell::get)
            .map_or_else(|| RandomIdGenerator::default().new_span_id(), |(_, s)| SpanId::from_bytes(s))
    }
}

/// Starts exporting to `endpoint` (once per process; a second, different endpoint is ignored
/// with a warning). Must run inside the tokio runtime the exporter's channel will use.
pub(crate) fn install(endpoint: &str, institution: &str, federation: &str) -> Result<(), OtlpError> {
    if let Some(e) = EXPORT.get() {
        if e.endpoint != endpoint {
            warn!(endpoint, using = %e.endpoint, "otlp exporter already installed in this process; endpoint ignored");
        }
        return Ok(());
    }
    let fail = |why: String| OtlpError { endpoint: endpoint.to_owned(), why };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let resource = Resource::builder()
        .with_service_name("bureau")
        .with_attribute(KeyValue::new("service.instance.id", institution.to_owned()))
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_attribute(KeyValue::new("bureau.federation", federation.to_owned()))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_id_generator(GivenIds)
        .with_resource(resource)
        .build();
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "bureau");
    if EXPORT.set(Export { endpoint: endpoint.to_owned(), provider, tracer }).is_ok() {
        info!(endpoint, "exporting spans over otlp");
    }
    Ok(())
}

/// Records the finished hop `ctx` (started at `started`, ending now) as span `name` when export
/// is on and the trace is sampled. `error` marks it failed.
pub(crate) fn record(
    name: &'static str,
    side: Side,
    ctx: &TraceContext,
    started: SystemTime,
    mut attributes: Vec<KeyValue>,
    error: Option<String>,
) {
    let Some(export) = EXPORT.get() else { return };
    if !ctx.sampled() {
        return;
    }
    let (service, method) = name.rsplit_once('/').unwrap_or(("", name));
    attributes.extend([
        KeyValue::new("rpc.system", "grpc"),
        KeyValue::new("rpc.service", service.to_owned()),
        KeyValue::new("rpc.method", method.to_owned()),
    ]);
    let parent = match ctx.parent_span_id() {
        Some(p) => Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_bytes(ctx.trace_id_bytes()),
            SpanId::from_bytes(p),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        )),
        None => Context::new(),
    };
    let builder = export
        .tracer
        .span_builder(name)
        .with_kind(match side {
            Side::Server => SpanKind::Server,
            Side::Client => SpanKind::Client,
        })
        .with_start_time(started)
        .with_attributes(attributes);
    NEXT_IDS.with(|n| n.set(Some((ctx.trace_id_bytes(), ctx.span_id_bytes()))));
    let mut span = builder.start_with_context(&export.tracer, &parent);
    NEXT_IDS.with(|n| n.set(None));
    if let Some(why) = error {
        span.set_status(Status::error(why));
    }
    span.end();
}

/// Sends the spans still buffered (a node stopping). Blocks: call it off the async workers.
pub(crate) fn flush() {
    if let Some(e) = EXPORT.get() {
        if let Err(err) = e.provider.force_flush() {
            warn!(error = %err, "otlp flush failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_must_be_an_http_url_with_a_host() {
        let at = |e: &str| TelemetrySection { otlp_endpoint: Some(e.into()) }.check();
        assert!(TelemetrySection::default().check().is_ok(), "off is fine");
        assert!(at("http://127.0.0.1:4317").is_ok() && at("https://collector.example:4317").is_ok());
        for bad in ["127.0.0.1:4317", "grpc://c:4317", "http://", "not a url"] {
            assert!(at(bad).is_err(), "{bad}");
        }
    }
}

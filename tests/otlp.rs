//! OpenTelemetry export: two real `bureau serve` processes configured with
//! `[telemetry] otlp_endpoint` send their spans of one federated score to an OTLP/gRPC receiver
//! this test runs (the collector's generated service stubs, our handler that keeps what arrives),
//! and the spans form one trace: the application's `traceparent` → the scoring node's server
//! span → its client span to the peer → the peer's server span.

mod common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bureau::{
    pb::bureau::v1::{self as pb, scoring_service_client::ScoringServiceClient},
    Role,
};
use common::{fed, record, subject};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        trace_service_server::{TraceService, TraceServiceServer},
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    },
    common::v1::any_value::Value,
    trace::v1::span::SpanKind,
};

/// What the receiver keeps of each span: its node, name, kind, ids and parent.
#[derive(Debug, Clone)]
struct Got {
    node: String,
    service: String,
    name: String,
    kind: i32,
    trace: String,
    span: String,
    parent: String,
}

/// The OTLP trace receiver: keeps every span it is sent.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Got>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().unwrap();
        for rs in req.into_inner().resource_spans {
            let attr = |key: &str| {
                rs.resource.as_ref().and_then(|r| r.attributes.iter().find(|a| a.key == key)).and_then(|a| {
                    match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(Value::StringValue(s)) => Some(s.clone()),
                        _ => None,
                    }
                })
            };
            let (node, service) =
                (attr("service.instance.id").unwrap_or_default(), attr("service.name").unwrap_or_default());
            for ss in rs.scope_spans {
                for s in ss.spans {
                    got.push(Got {
                        node: node.clone(),
                        service: service.clone(),
                        name: s.name,
                        kind: s.kind,
                        trace: hex::encode(s.trace_id),
                        span: hex::encode(s.span_id),
                        parent: hex::encode(s.parent_span_id),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts the receiver on a loopback port.
async fn receiver() -> (Receiver, SocketAddr) {
    let r = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = TraceServiceServer::new(r.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });
    (r, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_score_arrives_at_an_otlp_receiver_as_one_trace_across_two_nodes() {
    let (received, collector) = receiver().await;
    // The batch exporter's standard knob: send within 100 ms instead of 5 s (the children
    // inherit it; this test binary has no other test reading the environment).
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
    let f = fed(&["bank", "payapp"], &[]);
    let endpoint = format!("http://{collector}");
    let mut bank_cfg = f.fed.node_config("bank", &[]);
    bank_cfg.telemetry.otlp_endpoint = Some(endpoint.clone());
    let (_bank, bank_addr) = common::spawn_serve(&f, &bank_cfg);
    let mut payapp_cfg = f.fed.node_config("payapp", &[("bank", bank_addr)]);
    payapp_cfg.telemetry.otlp_endpoint = Some(endpoint);
    let (_payapp, payapp_addr) = common::spawn_serve(&f, &payapp_cfg);

    let s = subject(1);
    f.records(Role::Application, "bank", bank_addr)
        .furnish_records(pb::FurnishRecordsRequest { records: vec![record(&s, "bank-1", 1)] })
        .await
        .unwrap();
    let (trace, app_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let mut req = tonic::Request::new(pb::GetScoreRequest {
        subject_id: s.clone(),
        purpose: pb::Purpose::AccountReview as i32,
        consent_reference: String::new(),
    });
    req.metadata_mut().insert("traceparent", format!("00-{trace}-{app_span}-01").parse().unwrap());
    let mut scoring = ScoringServiceClient::new(f.channel(Role::Application, "payapp", payapp_addr));
    let score = scoring.get_score(req).await.unwrap().into_inner();
    assert!(!score.partial, "bank answered: {:?}", score.coverage);

    // Wait for the three spans of this trace.
    let deadline = Instant::now() + Duration::from_secs(20);
    let spans = loop {
        let spans: Vec<Got> = received.0.lock().unwrap().iter().filter(|g| g.trace == trace).cloned().collect();
        if spans.len() >= 3 || Instant::now() > deadline {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let find = |node: &str, name: &str, kind: SpanKind| {
        spans
            .iter()
            .find(|g| g.node == node && g.name == name && g.kind == kind as i32)
            .unwrap_or_else(|| panic!("no {kind:?} span {name} from {node} in {spans:#?}"))
    };
    let scored = find("payapp", "bureau.v1.ScoringService/GetScore", SpanKind::Server);
    let asked = find("payapp", "bureau.v1.FederationService/QueryRecords", SpanKind::Client);
    let answered = find("bank", "bureau.v1.FederationService/QueryRecords", SpanKind::Server);
    assert_eq!(scored.parent, app_span, "the node's span is the child of the application's");
    assert_eq!(asked.parent, scored.span, "the peer query is made inside the score");
    assert_eq!(answered.parent, asked.span, "the peer's span is the child of the query it received");
    assert!(spans.iter().all(|g| g.service == "bureau"), "{spans:#?}");
    let nodes: std::collections::BTreeSet<_> = spans.iter().map(|g| g.node.as_str()).collect();
    assert_eq!(nodes.into_iter().collect::<Vec<_>>(), ["bank", "payapp"], "two processes, one trace");

    // A caller that asks for no recording (flags 00) gets none, at either node; a score sent
    // after it (sampled) shows the exporters are still sending.
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    for (trace, flags) in [(unsampled, "00"), ("5bf92f3577b34da6a3ce929d0e0e4737", "01")] {
        let mut req = tonic::Request::new(pb::GetScoreRequest {
            subject_id: s.clone(),
            purpose: pb::Purpose::AccountReview as i32,
            consent_reference: String::new(),
        });
        req.metadata_mut().insert("traceparent", format!("00-{trace}-{app_span}-{flags}").parse().unwrap());
        scoring.get_score(req).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while received.0.lock().unwrap().iter().filter(|g| g.trace == "5bf92f3577b34da6a3ce929d0e0e4737").count() < 3
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = received.0.lock().unwrap().clone();
    assert_eq!(got.iter().filter(|g| g.trace == "5bf92f3577b34da6a3ce929d0e0e4737").count(), 3, "{got:#?}");
    assert!(!got.iter().any(|g| g.trace == unsampled), "an unsampled trace was exported: {got:#?}");
}

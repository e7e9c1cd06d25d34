//! Calls per gRPC method and status code, and their latency, as Prometheus metrics
//! (`bureau_grpc_requests_total`, `bureau_grpc_request_duration_seconds`).

use std::time::Instant;

use tonic::{Code, Status};

/// A tower layer that counts and times every call the server answers.
#[derive(Clone, Copy)]
pub(crate) struct MetricsLayer;

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = Metered<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Metered(inner)
    }
}

/// See [`MetricsLayer`].
#[derive(Clone)]
pub(crate) struct Metered<S>(S);

impl<S, B, R> tower::Service<http::Request<B>> for Metered<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<http::Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().to_owned();
        let started = Instant::now();
        let fut = self.0.call(req);
        Box::pin(async move {
            let res = fut.await?;
            // Errors come as trailers-only responses (status in the headers); a success's status
            // is in the trailers, so no status header means OK (a stream failing after its first
            // message counts as OK here).
            let code = Status::from_header_map(res.headers()).map_or(Code::Ok, |s| s.code());
            // Unknown paths are caller-chosen strings: one label for all of them.
            let method = if code == Code::Unimplemented { "unknown".to_owned() } else { method };
            let code = format!("{code:?}");
            metrics::counter!("bureau_grpc_requests_total", "method" => method.clone(), "code" => code).increment(1);
            metrics::histogram!("bureau_grpc_request_duration_seconds", "method" => method)
                .record(started.elapsed().as_secs_f64());
            Ok(res)
        })
    }
}

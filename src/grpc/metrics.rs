//! Calls per gRPC service, method and status code, and their latency, as Prometheus metrics
//! (`bureau_grpc_requests_total`, `bureau_grpc_request_duration_seconds`). A call is counted and
//! timed when its response body ends (a stream's last message and trailers, or the client
//! going away), so streams are timed to their end and counted with their final status.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use http_body::{Body, Frame, SizeHint};
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
    type Response = http::Response<MeteredBody<R>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_owned();
        let started = Instant::now();
        let fut = self.0.call(req);
        Box::pin(async move {
            let res = fut.await?;
            // Errors usually come as trailers-only responses (status in the headers).
            let early = Status::from_header_map(res.headers()).map(|s| s.code());
            let call = Call { path, started, code: early, done: false };
            Ok(res.map(|inner| MeteredBody { inner, call }))
        })
    }
}

/// One call being answered: recorded once, when its body ends or is dropped.
struct Call {
    path: String,
    started: Instant,
    /// The status, once the headers or trailers said it.
    code: Option<Code>,
    done: bool,
}

impl Call {
    fn record(&mut self, ended: bool) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        // A body that ends without a status is a success; one dropped before its end is a call
        // the client abandoned (or the server cancelled at its drain deadline).
        let code = self.code.unwrap_or(if ended { Code::Ok } else { Code::Cancelled });
        let (service, method) = labels(&self.path, code);
        let code = canonical(code);
        metrics::counter!("bureau_grpc_requests_total", "service" => service.clone(), "method" => method.clone(), "code" => code)
            .increment(1);
        metrics::histogram!("bureau_grpc_request_duration_seconds", "service" => service, "method" => method)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// The `service` and `method` labels of `path` (`/bureau.v1.ScoringService/GetScore`). Unknown
/// paths are caller-chosen strings: one label, `unknown`, for all of them.
fn labels(path: &str, code: Code) -> (String, String) {
    match path.trim_start_matches('/').split_once('/') {
        Some((service, method)) if code != Code::Unimplemented && !service.is_empty() && !method.is_empty() => {
            (service.to_owned(), method.to_owned())
        }
        _ => ("unknown".to_owned(), "unknown".to_owned()),
    }
}

/// gRPC's canonical name of `code` (`OK`, `PERMISSION_DENIED`), as other gRPC servers label it.
pub(crate) fn canonical(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A response body that records its call when it ends (see [`Call`]).
pub(crate) struct MeteredBody<R> {
    inner: R,
    call: Call,
}

impl<R> Drop for MeteredBody<R> {
    fn drop(&mut self) {
        self.call.record(false);
    }
}

impl<R: Body + Unpin> Body for MeteredBody<R> {
    type Data = R::Data;
    type Error = R::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<R::Data>, R::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    if let Some(status) = Status::from_header_map(trailers) {
                        self.call.code = Some(status.code());
                    } else if self.call.code.is_none() {
                        self.call.code = Some(Code::Ok);
                    }
                    self.call.record(true);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                self.call.code.get_or_insert(Code::Internal);
                self.call.record(true);
            }
            Poll::Ready(None) => self.call.record(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_grpc_canonical_names_and_paths_split_into_service_and_method() {
        // The names in grpc/doc/statuscodes.md, in code order 0..=16.
        let names = [
            "OK",
            "CANCELLED",
            "UNKNOWN",
            "INVALID_ARGUMENT",
            "DEADLINE_EXCEEDED",
            "NOT_FOUND",
            "ALREADY_EXISTS",
            "PERMISSION_DENIED",
            "RESOURCE_EXHAUSTED",
            "FAILED_PRECONDITION",
            "ABORTED",
            "OUT_OF_RANGE",
            "UNIMPLEMENTED",
            "INTERNAL",
            "UNAVAILABLE",
            "DATA_LOSS",
            "UNAUTHENTICATED",
        ];
        for (i, name) in names.iter().enumerate() {
            assert_eq!(canonical(Code::from(i as i32)), *name);
        }
        let l = |p: &str, c| labels(p, c);
        assert_eq!(
            l("/bureau.v1.ScoringService/GetScore", Code::Ok),
            ("bureau.v1.ScoringService".into(), "GetScore".into())
        );
        assert_eq!(l("/x.Y/Z", Code::Unimplemented), ("unknown".into(), "unknown".into()));
        assert_eq!(l("/nonsense", Code::Ok), ("unknown".into(), "unknown".into()));
    }
}

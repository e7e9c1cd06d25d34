//! Furnishing over real mTLS gRPC: round trips, pagination, version ordering, validation.

mod common;

use bureau::{pb::bureau::v1 as pb, pb::google::r#type::Date, Role};
use common::{fed, reason, record, subject, violations};
use tonic::Code;

#[tokio::test]
async fn furnish_get_list_round_trip_with_pagination() {
    let f = fed(&["bank"], &[]);
    let node = f.start("bank").await;
    let mut c = f.records(Role::Application, "bank", node.addr);
    let s = subject(1);
    let batch: Vec<_> = (0..25).map(|i| record(&s, &format!("card-{i:02}"), 1)).collect();
    let other = record(&subject(2), "card-x", 1);
    let resp = c
        .furnish_records(pb::FurnishRecordsRequest { records: batch.into_iter().chain([other]).collect() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((resp.accepted_count, resp.ignored_count, resp.rejected_count), (26, 0, 0));
    assert!(resp.results.iter().all(|r| r.outcome == pb::FurnishOutcome::Created as i32 && r.stored_version == 1));

    let got = c
        .get_record(pb::GetRecordRequest { name: "institutions/bank/records/card-07".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.name, "institutions/bank/records/card-07");
    assert_eq!(got.furnisher, "bank");
    assert_eq!(got.subject_id, s);
    assert_eq!(got.balance_minor, 500_001);
    assert_eq!(got.payment_history.len(), 12);
    assert!(got.update_time.is_some());

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = c
            .list_records(pb::ListRecordsRequest { parent: format!("subjects/{s}"), page_size: 10, page_token: token })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(page.records.into_iter().map(|r| r.record_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25).map(|i| format!("card-{i:02}")).collect();
    assert_eq!(seen, expected, "every record once, in order, none of the other subject's");

    let err = c
        .list_records(pb::ListRecordsRequest {
            parent: format!("subjects/{s}"),
            page_size: -1,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err)[0].0, "page_size");
    let err = c
        .list_records(pb::ListRecordsRequest {
            parent: format!("subjects/{}", subject(2)),
            page_size: 10,
            page_token: "Zm9v".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "page_token");
    let missing =
        c.get_record(pb::GetRecordRequest { name: "institutions/bank/records/nope".into() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn furnisher_comes_from_the_certificate_not_the_request() {
    let f = fed(&["bank", "lender"], &[]);
    let node = f.start("bank").await;
    let mut c = f.records(Role::Application, "bank", node.addr);
    let mut r = record(&subject(1), "loan-1", 1);
    r.furnisher = "lender".into();
    r.name = "institutions/lender/records/loan-1".into();
    c.furnish_records(pb::FurnishRecordsRequest { records: vec![r] }).await.unwrap();
    let got = c
        .get_record(pb::GetRecordRequest { name: "institutions/bank/records/loan-1".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.furnisher, "bank");
    let err =
        c.get_record(pb::GetRecordRequest { name: "institutions/lender/records/loan-1".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err).as_deref(), Some("NOT_OWN_RECORD"));
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn newer_versions_replace_older_and_equal_are_ignored_and_reported() {
    let f = fed(&["bank"], &[]);
    let node = f.start("bank").await;
    let mut c = f.records(Role::Application, "bank", node.addr);
    let s = subject(3);
    let c0 = c.clone();
    let furnish = |v: u64| {
        let mut c = c0.clone();
        let s = s.clone();
        async move {
            let r = c
                .furnish_records(pb::FurnishRecordsRequest { records: vec![record(&s, "acct", v)] })
                .await
                .unwrap()
                .into_inner();
            (pb::FurnishOutcome::try_from(r.results[0].outcome).unwrap(), r.results[0].stored_version, r.ignored_count)
        }
    };
    assert_eq!(furnish(2).await, (pb::FurnishOutcome::Created, 2, 0));
    assert_eq!(furnish(1).await, (pb::FurnishOutcome::IgnoredStale, 2, 1));
    assert_eq!(furnish(2).await, (pb::FurnishOutcome::IgnoredStale, 2, 1));
    assert_eq!(furnish(5).await, (pb::FurnishOutcome::Replaced, 5, 0));
    let got = c
        .get_record(pb::GetRecordRequest { name: "institutions/bank/records/acct".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((got.version, got.balance_minor), (5, 500_005));

    // Within one batch the later of two versions wins, whatever their order.
    let r = c
        .furnish_records(pb::FurnishRecordsRequest { records: vec![record(&s, "dup", 3), record(&s, "dup", 2)] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.accepted_count, r.ignored_count), (1, 1));

    // Correction: higher version replaces, lower is ignored, unknown record is NOT_FOUND.
    let fixed =
        c.correct_record(pb::CorrectRecordRequest { record: Some(record(&s, "acct", 6)) }).await.unwrap().into_inner();
    assert_eq!(fixed.outcome, pb::FurnishOutcome::Replaced as i32);
    assert_eq!(fixed.record.unwrap().version, 6);
    let stale =
        c.correct_record(pb::CorrectRecordRequest { record: Some(record(&s, "acct", 4)) }).await.unwrap().into_inner();
    assert_eq!(stale.outcome, pb::FurnishOutcome::IgnoredStale as i32);
    let err = c.correct_record(pb::CorrectRecordRequest { record: Some(record(&s, "ghost", 9)) }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let mut moved = record(&subject(4), "acct", 7);
    moved.balance_minor = 1;
    let err = c.correct_record(pb::CorrectRecordRequest { record: Some(moved) }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err)[0].0, "record.subject_id");

    // Deletion keeps a tombstone: the record is gone, a stale re-send does not bring it back.
    let err = c
        .delete_record(pb::DeleteRecordRequest {
            name: "institutions/bank/records/acct".into(),
            reason: 0,
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "reason");
    // A control character in the note (a NUL no database text column takes) is bad input,
    // refused before any store sees it, on every backend.
    let err = c
        .delete_record(pb::DeleteRecordRequest {
            name: "institutions/bank/records/acct".into(),
            reason: pb::DeletionReason::FurnishedInError as i32,
            note: "wrong\u{0}customer".into(),
        })
        .await
        .unwrap_err();
    assert_eq!((err.code(), violations(&err)[0].0.as_str()), (Code::InvalidArgument, "note"));
    let del = c
        .delete_record(pb::DeleteRecordRequest {
            name: "institutions/bank/records/acct".into(),
            reason: pb::DeletionReason::FurnishedInError as i32,
            note: "wrong customer".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(del.deleted_version, 6);
    let gone = c.get_record(pb::GetRecordRequest { name: "institutions/bank/records/acct".into() }).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert_eq!(furnish(6).await, (pb::FurnishOutcome::IgnoredStale, 0, 1));
    assert_eq!(furnish(7).await, (pb::FurnishOutcome::Created, 7, 0));
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_validation_rule_answers_invalid_argument_naming_record_and_field() {
    let f = fed(&["bank"], &[]);
    let node = f.start("bank").await;
    let mut c = f.records(Role::Application, "bank", node.addr);
    let s = subject(5);
    type Alter = fn(&mut pb::CreditRecord);
    let cases: Vec<(&str, Alter)> = vec![
        ("record_id", |r| r.record_id = "has space".into()),
        ("record_id", |r| r.record_id = "x".repeat(65)),
        ("subject_id", |r| r.subject_id = "11010119900307123X".into()),
        ("kind", |r| r.kind = 0),
        ("kind", |r| r.kind = 42),
        ("status", |r| r.status = 0),
        ("opened_date", |r| r.opened_date = None),
        ("opened_date", |r| r.opened_date = Some(Date { year: 2023, month: 2, day: 30 })),
        ("opened_date", |r| r.opened_date = Some(Date { year: 2999, month: 1, day: 1 })),
        ("reported_date", |r| r.reported_date = Some(Date { year: 2020, month: 1, day: 1 })),
        ("closed_date", |r| r.closed_date = Some(Date { year: 2020, month: 1, day: 1 })),
        ("closed_date", |r| r.status = pb::AccountStatus::Closed as i32),
        ("credit_limit_minor", |r| r.credit_limit_minor = -1),
        ("balance_minor", |r| r.balance_minor = -5),
        ("currency_code", |r| r.currency_code = "rmb".into()),
        ("days_past_due", |r| r.days_past_due = 30),
        ("days_past_due", |r| {
            r.status = pb::AccountStatus::Delinquent as i32;
            r.days_past_due = 4000
        }),
        ("payment_history", |r| r.payment_history = vec![2; 25]),
        ("payment_history[1]", |r| r.payment_history = vec![2, 0]),
        ("version", |r| r.version = 0),
    ];
    for (field, alter) in cases {
        let mut r = record(&s, "bad-1", 1);
        alter(&mut r);
        let quoted_id = format!("{:?}", r.record_id);
        let err = c.furnish_records(pb::FurnishRecordsRequest { records: vec![r] }).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        let v = violations(&err);
        let expected = format!("records[0].{field}");
        assert!(v.iter().any(|(f, d)| *f == expected && d.contains(&quoted_id)), "{field}: {v:?}");
    }
    let empty = c.furnish_records(pb::FurnishRecordsRequest { records: vec![] }).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);

    // A mixed batch stores the good, reports the bad, and writes nothing half.
    let mut bad = record(&s, "bad-2", 1);
    bad.currency_code = "usd".into();
    let resp = c
        .furnish_records(pb::FurnishRecordsRequest {
            records: vec![record(&s, "good-1", 1), bad, record(&s, "good-2", 1)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((resp.accepted_count, resp.rejected_count), (2, 1));
    assert_eq!(resp.results[1].outcome, pb::FurnishOutcome::Rejected as i32);
    assert_eq!(resp.results[1].record_id, "bad-2");
    assert_eq!(resp.results[1].violations[0].field, "currency_code");
    let list = c
        .list_records(pb::ListRecordsRequest {
            parent: format!("subjects/{s}"),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = list.records.iter().map(|r| r.record_id.as_str()).collect();
    assert_eq!(ids, ["good-1", "good-2"]);
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn oversized_messages_and_batches_are_refused_not_crashed() {
    let f = fed(&["bank"], &[]);
    let mut cfg = f.fed.node_config("bank", &[]);
    cfg.limits.max_message_bytes = 64 * 1024;
    cfg.limits.max_batch_records = 100;
    let node = bureau::start(cfg).await.unwrap();
    let mut c = f.records(Role::Application, "bank", node.addr);
    let s = subject(6);
    let big: Vec<_> = (0..800).map(|i| record(&s, &format!("r-{i}"), 1)).collect();
    let err = c.furnish_records(pb::FurnishRecordsRequest { records: big.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(reason(&err).as_deref(), Some("RESOURCE_EXHAUSTED"), "unary carries ErrorInfo: {err:?}");
    let err = c
        .stream_furnish_records(tokio_stream::iter(vec![pb::FurnishRecordsRequest { records: big }]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(reason(&err).as_deref(), Some("RESOURCE_EXHAUSTED"), "stream carries ErrorInfo: {err:?}");
    let many: Vec<_> = (0..101).map(|i| record(&s, &format!("m-{i}"), 1)).collect();
    let err = c.furnish_records(pb::FurnishRecordsRequest { records: many }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // The node is still up and serving.
    c.furnish_records(pb::FurnishRecordsRequest { records: vec![record(&s, "ok", 1)] }).await.unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn streaming_furnish_reports_counts_and_rejections() {
    let f = fed(&["bank"], &[]);
    let node = f.start("bank").await;
    let mut c = f.records(Role::Application, "bank", node.addr);
    let batches: Vec<_> = (0..5)
        .map(|b| pb::FurnishRecordsRequest {
            records: (0..200)
                .map(|i| {
                    let mut r = record(&subject(1000 + i), &format!("s-{b}-{i}"), 1);
                    if i == 7 {
                        r.version = 0;
                    }
                    r
                })
                .collect(),
        })
        .collect();
    let resp = c.stream_furnish_records(tokio_stream::iter(batches)).await.unwrap().into_inner();
    assert_eq!((resp.accepted_count, resp.ignored_count, resp.rejected_count), (995, 0, 5));
    assert_eq!(resp.results.len(), 5, "only records not stored as sent are itemised");
    assert!(resp.results.iter().all(|r| r.record_id.ends_with("-7") && r.violations[0].field == "version"));
    node.shutdown().await.unwrap();
}

/// A message that puts raw bytes where `bureau.v1` expects a string or a message: what a broken
/// or hostile client sends.
#[derive(Clone, PartialEq, prost::Message)]
struct Garbage {
    #[prost(bytes = "vec", tag = "1")]
    field_one: Vec<u8>,
}

/// Bytes that are not a valid request message (invalid UTF-8 in a string, random bytes as an
/// embedded message) are the caller's fault: INVALID_ARGUMENT with a field violation, on unary
/// and streaming calls alike, never INTERNAL (which clients read as ours and retry).
#[tokio::test]
async fn undecodable_messages_are_invalid_argument_not_internal() {
    let f = fed(&["bank"], &[]);
    let node = f.start("bank").await;
    let call = |path: &'static str, bytes: Vec<u8>, stream: bool| {
        let ch = f.channel(Role::Application, "bank", node.addr);
        async move {
            let mut grpc = tonic::client::Grpc::new(ch);
            grpc.ready().await.unwrap();
            let path = http::uri::PathAndQuery::from_static(path);
            let msg = Garbage { field_one: bytes };
            if stream {
                let codec = tonic_prost::ProstCodec::<Garbage, pb::FurnishRecordsResponse>::default();
                grpc.client_streaming(tonic::Request::new(tokio_stream::iter(vec![msg])), path, codec).await.map(drop)
            } else {
                let codec = tonic_prost::ProstCodec::<Garbage, pb::ListRecordsResponse>::default();
                grpc.unary(tonic::Request::new(msg), path, codec).await.map(drop)
            }
        }
    };
    let random: Vec<u8> = (0..64u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80).collect();
    let cases = [
        ("/bureau.v1.RecordsService/ListRecords", vec![0xff, 0xfe, 0xfd], false), // `parent`: not UTF-8
        ("/bureau.v1.RecordsService/FurnishRecords", random.clone(), false),      // `records[0]`: not a message
        ("/bureau.v1.RecordsService/StreamFurnishRecords", random, true),
    ];
    for (path, bytes, stream) in cases {
        let err = call(path, bytes, stream).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{path}: {err:?}");
        assert_eq!(reason(&err).as_deref(), Some("INVALID_ARGUMENT"), "{path}");
        assert_eq!(violations(&err)[0].0, "request", "{path}");
    }
    // The node is still up and serving.
    f.records(Role::Application, "bank", node.addr)
        .furnish_records(pb::FurnishRecordsRequest { records: vec![record(&subject(1), "ok", 1)] })
        .await
        .unwrap();
    node.shutdown().await.unwrap();
}

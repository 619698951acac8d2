//! Waker events for tokio-console: every use of a task's waker emits a `trace` event with target
//! `runtime::waker`, `op` naming the operation and `task.id`, inside the task's `runtime.spawn`
//! span.
//!
//! This binary installs a global subscriber, so it holds a single test.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use common::{within, TIMEOUT};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Field names and values, values rendered as text (strings unquoted).
#[derive(Clone, Debug, Default)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push((field.name().to_owned(), value.to_string()));
    }
}

#[derive(Clone, Debug)]
struct Recorded {
    target: String,
    fields: Fields,
    /// The name of the event's parent span, and that span's `task.id`.
    parent: Option<(&'static str, Option<String>)>,
}

/// Keeps the spans' fields so that an event's parent can be checked.
struct SpanFields(Fields);

#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<Recorded>>>,
}

impl<S> Layer<S> for Recorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let parent = ctx.event_span(event).map(|span| {
            let id = span
                .extensions()
                .get::<SpanFields>()
                .and_then(|f| f.0.get("task.id").map(str::to_owned));
            (span.name(), id)
        });
        self.events.lock().unwrap().push(Recorded {
            target: event.metadata().target().to_owned(),
            fields,
            parent,
        });
    }
}

#[test]
fn waker_operations_emit_console_events_in_the_task_span() {
    let recorder = Recorder::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(recorder.clone()))
        .expect("install the global subscriber");

    let rt = common::runtime(2);
    let id = within("a task that uses its waker every way", TIMEOUT, move || {
        rt.block_on(async {
            let task = pitcrew::spawn(async {
                let mut first = true;
                std::future::poll_fn(move |cx| {
                    if !first {
                        return Poll::Ready(());
                    }
                    first = false;
                    let clone = cx.waker().clone(); // waker.clone
                    clone.wake_by_ref(); // waker.wake_by_ref
                    let other = clone.clone(); // waker.clone
                    drop(other); // waker.drop
                    clone.wake(); // waker.wake
                    Poll::Pending
                })
                .await;
                pitcrew::task::id()
            });
            task.await.expect("the task ends")
        })
    });

    let want = id.as_u64().to_string();
    let events: Vec<Recorded> = recorder
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.fields.get("task.id") == Some(want.as_str()))
        .cloned()
        .collect();
    let ops: Vec<&str> = events.iter().filter_map(|e| e.fields.get("op")).collect();
    for op in [
        "waker.clone",
        "waker.wake_by_ref",
        "waker.drop",
        "waker.wake",
    ] {
        assert!(ops.contains(&op), "no {op} event for the task; saw {ops:?}");
    }
    let pos = |op: &str| ops.iter().position(|o| *o == op).unwrap();
    assert!(
        pos("waker.clone") < pos("waker.wake_by_ref") && pos("waker.drop") < pos("waker.wake"),
        "events out of order: {ops:?}"
    );
    for e in &events {
        assert_eq!(e.target, "runtime::waker", "{e:?}");
        assert_eq!(
            e.parent,
            Some(("runtime.spawn", Some(want.clone()))),
            "the event's parent is not the task's span: {e:?}"
        );
        let mut names: Vec<&str> = e.fields.0.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["op", "task.id"], "{e:?}");
    }
}

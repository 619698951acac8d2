//! Tracing integration: every task runs inside a `runtime.spawn` span that names it and where it
//! was spawned, and a poll longer than `slow_poll_threshold` emits a WARN naming the task and the
//! time it took.
//!
//! This binary installs a global subscriber, so it holds a single test.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{join, within, TIMEOUT};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Field names and values, values rendered as text (strings unquoted).
#[derive(Clone, Debug, Default)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
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
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push((field.name().to_owned(), value.to_string()));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.push((field.name().to_owned(), value.to_string()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push((field.name().to_owned(), value.to_string()));
    }
}

#[derive(Clone, Debug)]
struct SpanData {
    name: &'static str,
    declared: Vec<&'static str>,
    fields: Fields,
}

#[derive(Clone, Debug)]
struct EventData {
    level: Level,
    fields: Fields,
    /// The spans the event happened in, innermost first.
    scope: Vec<SpanData>,
}

#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<EventData>>>,
}

impl<S> Layer<S> for Recorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let data = SpanData {
            name: attrs.metadata().name(),
            declared: attrs.metadata().fields().iter().map(|f| f.name()).collect(),
            fields,
        };
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(data);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(data) = span.extensions_mut().get_mut::<SpanData>() {
                values.record(&mut data.fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let scope = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .filter_map(|span| span.extensions().get::<SpanData>().cloned())
                    .collect()
            })
            .unwrap_or_default();
        self.events.lock().unwrap().push(EventData {
            level: *event.metadata().level(),
            fields,
            scope,
        });
    }
}

/// Parses "50.2ms", "1.5s", "50200µs", "50200us" or "50200000ns".
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let secs = match unit.trim() {
        "s" => number,
        "ms" => number / 1e3,
        "µs" | "us" => number / 1e6,
        "ns" => number / 1e9,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// Every duration an event carries: field values like "50.2ms", words of its message, or bare
/// numbers in fields whose name gives the unit.
fn durations_in(fields: &Fields) -> Vec<Duration> {
    let mut found = Vec::new();
    for (name, value) in &fields.0 {
        for word in
            value.split(|c: char| c.is_whitespace() || matches!(c, ',' | '(' | ')' | '=' | ':'))
        {
            if let Some(d) = parse_duration(word) {
                found.push(d);
            }
        }
        if let Ok(n) = value.parse::<f64>() {
            let name = name.to_lowercase();
            let unit = if name.ends_with("ns") || name.contains("nanos") {
                1e-9
            } else if name.ends_with("us") || name.contains("micros") {
                1e-6
            } else if name.ends_with("ms") || name.contains("millis") {
                1e-3
            } else if name.ends_with("secs") || name.ends_with("_s") || name.ends_with(".s") {
                1.0
            } else {
                continue;
            };
            found.push(Duration::from_secs_f64(n * unit));
        }
    }
    found
}

/// True when `value` is the id, printed either way (`Display` is the number).
fn is_id(value: &str, id: pitcrew::task::Id) -> bool {
    value == id.to_string() || value == format!("{id:?}") || value == id.as_u64().to_string()
}

/// The `runtime.spawn` span the event with `marker = <marker>` was emitted in.
fn task_span_of(events: &[EventData], marker: &str) -> SpanData {
    let event = events
        .iter()
        .find(|e| e.fields.get("marker") == Some(marker))
        .unwrap_or_else(|| panic!("no event with marker {marker:?} was recorded"));
    event
        .scope
        .iter()
        .find(|s| s.name == "runtime.spawn")
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the task emitting {marker:?} was not inside a runtime.spawn span: {:?}",
                event.scope
            )
        })
}

#[track_caller]
fn check_task_span(span: &SpanData, id: pitcrew::task::Id, line: u32, what: &str) {
    for field in [
        "kind",
        "task.id",
        "task.name",
        "loc.file",
        "loc.line",
        "loc.col",
    ] {
        assert!(
            span.declared.contains(&field),
            "{what}: span lacks field {field}: {:?}",
            span.declared
        );
    }
    assert!(
        span.fields.get("kind").is_some_and(|k| !k.is_empty()),
        "{what}: kind not recorded: {span:?}"
    );
    let recorded = span.fields.get("task.id").unwrap_or_default();
    assert!(
        is_id(recorded, id),
        "{what}: task.id {recorded:?}, expected {id}"
    );
    let file = span.fields.get("loc.file").unwrap_or_default();
    assert!(
        file.ends_with("rt_tracing.rs"),
        "{what}: loc.file {file:?} is not the spawning call site"
    );
    assert_eq!(
        span.fields.get("loc.line"),
        Some(line.to_string().as_str()),
        "{what}: loc.line"
    );
    let col: u32 = span
        .fields
        .get("loc.col")
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{what}: loc.col missing or not a number: {span:?}"));
    assert!(col > 0);
}

#[test]
fn tasks_run_in_runtime_spawn_spans_and_slow_polls_are_reported() {
    let recorder = Recorder::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(recorder.clone()))
        .expect("this binary installs the only subscriber");

    let rt = pitcrew::Runtime::builder()
        .workers(2)
        .thread_name("traced")
        .slow_poll_threshold(Duration::from_millis(10))
        .build()
        .unwrap();
    let handle = rt.handle().clone();

    // A named task that blocks its worker for 50 ms inside one poll.
    let slow = async {
        tracing::info!(marker = "slow");
        std::thread::sleep(Duration::from_millis(50));
    };
    let builder = pitcrew::task::Builder::new().name("slowpoke");
    // The call stays on one line so that `line!() + 1` is its line; keep it short for rustfmt.
    let slow_line = line!() + 1;
    let slow = builder.spawn_on(slow, &handle);
    let slow = slow.expect("the runtime is running");
    let slow_id = slow.id();
    join("the slow task", slow).unwrap();

    // Plain spawn from the owning thread.
    let plain = async { tracing::info!(marker = "plain") };
    let plain_line = line!() + 1;
    let plain = rt.spawn(plain);
    let plain_id = plain.id();
    join("the plain task", plain).unwrap();

    // Spawn from inside a task.
    let outer = rt.spawn(async {
        let inner = async { tracing::info!(marker = "inner") };
        let inner_line = line!() + 1;
        let inner = pitcrew::spawn(inner);
        let inner_id = inner.id();
        inner.await.unwrap();
        (inner_id, inner_line)
    });
    let (inner_id, inner_line) = join("the outer task", outer).unwrap();

    // Spawn through a Handle from another thread.
    let (remote_id, remote_line) = within("a remote spawn", TIMEOUT, {
        let handle = handle.clone();
        move || {
            let remote = async { tracing::info!(marker = "remote") };
            let remote_line = line!() + 1;
            let remote = handle.spawn(remote);
            let remote_id = remote.id();
            futures_lite::future::block_on(remote).unwrap();
            (remote_id, remote_line)
        }
    });

    // A blocking job.
    let blocking = || tracing::info!(marker = "blocking");
    let blocking_line = line!() + 1;
    let blocking = rt.spawn_blocking(blocking);
    let blocking_id = blocking.id();
    join("the blocking job", blocking).unwrap();

    within("runtime drop", TIMEOUT, move || drop(rt));
    let events = recorder.events.lock().unwrap().clone();

    // Spans.
    let span = task_span_of(&events, "slow");
    check_task_span(&span, slow_id, slow_line, "Builder::spawn_on");
    assert_eq!(span.fields.get("task.name"), Some("slowpoke"));
    check_task_span(
        &task_span_of(&events, "plain"),
        plain_id,
        plain_line,
        "Runtime::spawn",
    );
    check_task_span(
        &task_span_of(&events, "inner"),
        inner_id,
        inner_line,
        "pitcrew::spawn",
    );
    check_task_span(
        &task_span_of(&events, "remote"),
        remote_id,
        remote_line,
        "Handle::spawn",
    );
    check_task_span(
        &task_span_of(&events, "blocking"),
        blocking_id,
        blocking_line,
        "spawn_blocking",
    );

    // The slow poll warning: the id and the name, in the event or in the spans it sits in, and
    // how long the poll took.
    let warnings: Vec<&EventData> = events.iter().filter(|e| e.level == Level::WARN).collect();
    let mentions = |e: &EventData, pred: &dyn Fn(&str) -> bool| {
        e.fields.0.iter().any(|(_, v)| pred(v))
            || e.scope
                .iter()
                .filter(|s| s.name == "runtime.spawn")
                .any(|s| s.fields.0.iter().any(|(_, v)| pred(v)))
    };
    let slow_warning = warnings.iter().find(|e| {
        mentions(e, &|v| {
            v.split(|c: char| !c.is_alphanumeric() && c != '(' && c != ')')
                .any(|word| is_id(word, slow_id))
        }) && mentions(e, &|v| v.contains("slowpoke"))
    });
    let slow_warning = slow_warning.unwrap_or_else(|| {
        panic!(
            "no WARN event names the slow task ({slow_id}, \"slowpoke\"); warnings: {warnings:#?}"
        )
    });
    let took = durations_in(&slow_warning.fields);
    assert!(
        took.iter()
            .any(|d| *d >= Duration::from_millis(50) && *d < Duration::from_secs(60)),
        "the slow-poll warning does not say the poll took at least 50 ms: {slow_warning:#?}"
    );
}

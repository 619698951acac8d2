//! Scope spans parent their children's task spans, so a tracing subscriber sees the scope tree.
//! A test binary of its own: it installs a global subscriber.

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::sync::{Arc, Mutex};

use pitcrew::scope::{nursery_with, ScopeOptions};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

#[derive(Default, Clone, Debug)]
struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .push((field.name().to_string(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_string(), value.to_string()));
    }
}

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// (span name, its fields, its parent's name and fields)
type Seen = Arc<Mutex<Vec<(String, Fields, Option<(String, Fields)>)>>>;

struct Recorder(Seen);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let span = ctx.span(id).expect("the new span is registered");
        span.extensions_mut().insert(fields.clone());
        let parent = span.parent().map(|p| {
            let f = p.extensions().get::<Fields>().cloned().unwrap_or_default();
            (p.name().to_string(), f)
        });
        self.0
            .lock()
            .unwrap()
            .push((span.name().to_string(), fields, parent));
    }
}

#[test]
fn nursery_children_run_in_spans_parented_by_their_scope() {
    let seen: Seen = Arc::default();
    let subscriber = tracing_subscriber::registry().with(Recorder(seen.clone()));
    tracing::subscriber::set_global_default(subscriber).expect("install the subscriber");

    common::within("nursery", common::TIMEOUT, || {
        let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
        rt.block_on(nursery_with(
            ScopeOptions::new().name("fetchers"),
            |n| async move {
                n.child()
                    .name("fetch-1")
                    .spawn(async { Ok::<_, String>(()) })
                    .await
                    .unwrap();
                Ok::<_, String>(())
            },
        ))
        .unwrap();
    });

    let seen = seen.lock().unwrap();
    let child = seen
        .iter()
        .find(|(name, f, _)| name == "runtime.spawn" && f.get("task.name") == Some("fetch-1"))
        .expect("the child's runtime.spawn span");
    let (parent_name, parent_fields) = child.2.as_ref().expect("the child span has a parent");
    assert_eq!(parent_name, "runtime.scope");
    assert_eq!(parent_fields.get("scope.name"), Some("fetchers"));
}

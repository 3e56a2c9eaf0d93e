//! Pinning a shadow divergence from the shadow report page: a form per differing rule of
//! an example, answered with the case (or why none) on a page of its own.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{Frame, page, posted, unavailable};
use crate::api::AppState;
use crate::config::Role;
use crate::service::pin::{PinError, PinRequest, Pinned, Side};

#[derive(Template)]
#[template(path = "console/pin.html")]
struct PinPage {
    frame: Frame,
    payment_id: String,
    pinned: Pinned,
}

#[derive(Deserialize)]
pub(super) struct PinForm {
    csrf: String,
    payment_id: String,
    rule: String,
    expect: Side,
}

/// Pins the divergence (pseudonymised: the console does not hand out a customer's data;
/// an auditor who needs it asks the API) and shows the case, or returns to the report
/// saying why nothing was pinned.
pub(super) async fn pin(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<PinForm>,
) -> Response {
    let (session_id, session) = match posted(
        &state,
        &headers,
        &form.csrf,
        &[Role::Operator, Role::Auditor],
        "Pin as vector",
        "pinning a divergence as a test vector",
    ) {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let result = state
        .service
        .pin_divergence(PinRequest {
            payment_id: form.payment_id.clone(),
            rule: form.rule,
            expect: form.expect,
            personal_data: false,
            actor: format!("console:{}", session.principal.name),
        })
        .await;
    match result {
        Ok(pinned) => page(&PinPage {
            frame: Frame::of(&session, "Pin as vector", None),
            payment_id: form.payment_id,
            pinned,
        }),
        Err(PinError::Service(error)) => unavailable(&error),
        Err(error) => {
            state
                .console_sessions
                .flash(&session_id, format!("Nothing pinned: {error}."));
            Redirect::to("/console/rules/shadow").into_response()
        }
    }
}

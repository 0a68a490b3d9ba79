//! `pods/exec` as the API server serves it: a websocket upgrade speaking
//! `v4.channel.k8s.io` (each binary message starts with its channel: 1 stdout, 2 stderr,
//! 3 the exit status as a `Status`). What the command prints is the router's: the tests
//! run the real `procshot cat` on a real capture directory.

use std::sync::Arc;

use bytes::Bytes;
use futures::SinkExt;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::Call;

/// What an exec'd command did.
pub struct ExecAnswer {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Its exit code.
    pub code: i32,
}

/// Runs the command an exec request names.
pub type ExecRouter = Arc<dyn Fn(&Call) -> ExecAnswer + Send + Sync>;

/// The argv of an exec request (its `command=` parameters, in order).
pub fn command(call: &Call) -> Vec<String> {
    url::form_urlencoded::parse(call.query.as_bytes())
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// Answers an exec request: upgrades it, then streams what `exec` says the command did.
pub fn answer(request: Request<()>, call: Call, exec: ExecRouter) -> Response<Full<Bytes>> {
    let key = request
        .headers()
        .get(http::header::SEC_WEBSOCKET_KEY)
        .expect("a websocket key")
        .as_bytes()
        .to_vec();
    let mut request = request;
    tokio::spawn(async move {
        let upgraded = hyper::upgrade::on(&mut request).await.expect("upgrade");
        let mut socket = WebSocketStream::from_raw_socket(
            hyper_util::rt::TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        let answer = exec(&call);
        for (channel, bytes) in [(1u8, &answer.stdout), (2u8, &answer.stderr)] {
            for chunk in bytes.chunks(32 * 1024) {
                let mut message = vec![channel];
                message.extend_from_slice(chunk);
                socket.send(Message::binary(message)).await.unwrap();
            }
        }
        let status = if answer.code == 0 {
            serde_json::json!({"metadata": {}, "status": "Success"})
        } else {
            serde_json::json!({"metadata": {}, "status": "Failure",
                "message": format!("command terminated with non-zero exit code: exit status {}", answer.code),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": answer.code.to_string()}]}})
        };
        let mut message = vec![3u8];
        message.extend(serde_json::to_vec(&status).unwrap());
        socket.send(Message::binary(message)).await.unwrap();
        let _ = socket.close(None).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_ACCEPT, derive_accept_key(&key))
        .header(http::header::SEC_WEBSOCKET_PROTOCOL, "v4.channel.k8s.io")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

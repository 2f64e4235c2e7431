//! HTTP/1.1 accept loop. It serves each connection itself, instead of using
//! `axum::serve`, so that a handler can close its connection without a response.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

/// Per-connection data that handlers receive as a request extension.
#[derive(Clone)]
pub(crate) struct Connection {
    pub peer: SocketAddr,
    /// Notified by a handler to close the connection without a response.
    pub close: Arc<Notify>,
}

/// Spawns the accept loop. Aborting the returned task closes the listener and
/// every open connection, because the connection tasks live in its `JoinSet`.
pub(crate) fn spawn(listener: TcpListener, router: Router) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(serve_connection(stream, peer, router.clone()));
                    }
                    Err(error) => {
                        // Errors such as EMFILE are transient, so back off and retry.
                        eprintln!("fake-wecom: accepting a connection failed: {error}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    })
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, router: Router) {
    // Small JSON responses would otherwise wait for Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let close = Arc::new(Notify::new());
    let connection = Connection {
        peer,
        close: Arc::clone(&close),
    };
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(connection.clone());
        router.clone().oneshot(request)
    });
    let serving = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        // Errors here come from clients that hang up or send malformed
        // HTTP, and the fake has nothing to do about either.
        _ = serving => {}
        () = close.notified() => {}
    }
}

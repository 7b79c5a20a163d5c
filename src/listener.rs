//! The listener: the actix-web [`App`] served inside actix-http's `HttpService` on
//! actix-server, plain or TLS (`server.tls`), so that an app client's WebSocket leaves the
//! HTTP/1 dispatcher after its 101.
//!
//! Why: actix-http's HTTP/1 dispatcher keeps an 8 KiB read and an 8 KiB write buffer for the
//! whole life of a connection, and actix-web-actors keeps a WebSocket on that dispatcher.
//! Here every request that asks for an upgrade (`Connection: upgrade`) goes to [`upgrade`]
//! instead, which still answers it with the same `App` (same routes, same checks, same error
//! answers), and then:
//!
//! - if the answer carries a [`TakeOver`] (the client WebSocket handler's 101,
//!   `http::clients::upgrade`), writes the 101 and hands the bare socket over to the client
//!   session (`actors::clients::ws_conn`); the dispatcher, its buffers and this service are done with it;
//! - otherwise (the BIGO ingress on actix-web-actors, an error answer, any other route) serves
//!   that one answer as the dispatcher would: the response head through actix-http's h1 codec,
//!   then the body stream, the bytes the client sends feeding the request's payload. The
//!   connection closes when the body ends. Few connections take this path.
//!
//! Requests without an upgrade never reach it: the dispatcher serves them as `HttpServer`
//! would, with its settings (keep-alive, request and disconnect timeouts). Connections handed
//! over no longer count towards actix-server's per-worker connection limit, and a graceful
//! stop does not wait for them (the shutdown kicks every client session first, `lib.rs`).
//!
//! With `server.internal` the same server also listens on the internal listener, with an App
//! of its own (the operator routes): plain HTTP, no upgrades, stopped with the rest.

use std::future::poll_fn;
use std::net::TcpListener;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use actix_codec::{AsyncRead, AsyncWrite, Framed};
use actix_http::body::{BoxBody, MessageBody};
use actix_http::{h1, HttpService, Request};
use actix_server::Server;
use actix_service::{
    fn_factory, fn_service, map_config, IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt,
};
use actix_web::dev::{AppConfig, ServiceResponse};
use actix_web::Error;
use actors::clients::ws_conn::{Handover, TakeOver};
use bytes::{Bytes, BytesMut};
use log::debug;
use rustls::ServerConfig;
use tokio_util::codec::Encoder;
use tokio_util::io::poll_read_buf;

/// The listener's settings, `HttpServer`'s defaults where the broker sets none.
pub struct Listen {
    pub listener: TcpListener,
    pub tls: Option<ServerConfig>,
    /// The internal listener (`server.internal`), served by the second App.
    pub internal: Option<TcpListener>,
    /// 0 = one per core.
    pub workers: usize,
    pub shutdown_timeout_s: u64,
}

/// Starts serving `make_app`'s App on `listen.listener`, and `make_internal_app`'s on
/// `listen.internal` when there is one.
pub fn serve<F, G, I, S, B>(listen: Listen, make_app: F, make_internal_app: G) -> std::io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    G: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig, Response = ServiceResponse<B>, Error = Error, InitError = ()>
        + 'static,
    S::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let Listen { listener, tls, internal, workers, shutdown_timeout_s } = listen;
    let addr = listener.local_addr()?;
    let secure = tls.is_some();
    // As HttpServer: the connection's host for ConnectionInfo when a request names none.
    // (`AppConfig::new` is crate-private; this is the constructor actix-test uses, and
    // Cargo.lock pins actix-web.)
    let app_config = move || AppConfig::__priv_test_new(secure, addr.to_string(), addr);
    let mut builder = Server::build().disable_signals().shutdown_timeout(shutdown_timeout_s);
    if workers > 0 {
        builder = builder.workers(workers);
    }
    let name = format!("danmu-broker-{addr}");
    // The same service over TCP or TLS; HttpServer's defaults (actix-web 4), which the broker
    // served with before.
    macro_rules! http_service {
        () => {
            HttpService::build()
                .keep_alive(actix_http::KeepAlive::default())
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                // A client connection's writes are whole bundles already (one vectored write
                // per wake-up, ws_conn): Nagle would only hold a small event back until the
                // previous one is acknowledged, a delayed ACK away.
                .tcp_nodelay(true)
                .local_addr(addr)
                .upgrade(upgrade_service(make_app.clone(), app_config))
                .finish(map_config(make_app().into_factory(), move |_| app_config()))
        };
    }
    let mut builder = match tls {
        None => builder.listen(name, listener, move || http_service!().tcp())?,
        Some(tls) => builder.listen(name, listener, move || http_service!().rustls_0_23(tls.clone()))?,
    };
    if let Some(internal) = internal {
        let addr = internal.local_addr()?;
        let app_config = move || AppConfig::__priv_test_new(false, addr.to_string(), addr);
        builder = builder.listen(format!("danmu-broker-internal-{addr}"), internal, move || {
            HttpService::build()
                .keep_alive(actix_http::KeepAlive::default())
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                .local_addr(addr)
                .finish(map_config(make_internal_app().into_factory(), move |_| app_config()))
                .tcp()
        })?;
    }
    Ok(builder.run())
}

/// The service that gets every upgrade request of a connection, with its own instance of the
/// App (the routes' state is shared `web::Data`).
fn upgrade_service<T, F, I, S, B>(
    make_app: F,
    app_config: impl Fn() -> AppConfig + Clone + 'static,
) -> impl ServiceFactory<(Request, Framed<T, h1::Codec>), Config = (), Response = (), Error = Error, InitError = ()>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
    F: Fn() -> I + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig, Response = ServiceResponse<B>, Error = Error, InitError = ()>
        + 'static,
    S::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    fn_factory(move || {
        let factory = make_app().into_factory().map_init_err(|_| ());
        let config = app_config();
        async move {
            let app = Rc::new(factory.new_service(config).await?);
            Ok::<_, ()>(fn_service(move |(req, framed): (Request, Framed<T, h1::Codec>)| {
                let app = app.clone();
                async move { upgrade(&*app, req, framed).await }
            }))
        }
    })
}

/// Answers one upgrade request with the App; see the module comment.
async fn upgrade<T, S, B>(app: &S, mut req: Request, framed: Framed<T, h1::Codec>) -> Result<(), Error>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
    S: Service<Request, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody + 'static,
{
    let (payload_tx, payload) = h1::Payload::create(false);
    *req.payload() = actix_http::Payload::H1 { payload };
    let res: actix_http::Response<BoxBody> = match app.call(req).await {
        Ok(res) => res.map_into_boxed_body().into(),
        Err(e) => e.error_response().into(),
    };
    let parts = framed.into_parts();
    let (mut io, mut codec, mut read_buf) = (parts.io, parts.codec, parts.read_buf);
    let (mut head, body) = res.into_parts();
    let take_over = head.extensions_mut().remove::<TakeOver>();
    let mut write_buf = BytesMut::new();
    codec.encode(h1::Message::Item((head, body.size())), &mut write_buf)?;
    if let Some(take_over) = take_over {
        // The client WebSocket: only the answer's bytes and what the client sent after its
        // request head travel on; the dispatcher's buffers are dropped here.
        drop(body);
        let handover = Handover {
            io: Box::new(io),
            read_ahead: BytesMut::from(&read_buf[..]),
            response_head: Bytes::copy_from_slice(&write_buf),
        };
        take_over.start(handover);
        return Ok(());
    }
    // Anything else: one answer, its body streamed, the client's bytes into the payload.
    let mut payload_tx = Some(payload_tx);
    if !read_buf.is_empty() {
        if let Some(tx) = payload_tx.as_mut() {
            tx.feed_data(read_buf.split().freeze());
        }
    }
    let mut body = std::pin::pin!(body);
    let mut body_done = false;
    poll_fn(|cx| loop {
        let mut progress = false;
        if !body_done {
            match body.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    codec.encode(h1::Message::Chunk(Some(chunk)), &mut write_buf)?;
                    progress = true;
                }
                Poll::Ready(Some(Err(e))) => {
                    debug!("upgrade answer body failed: {e}");
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(None) => {
                    codec.encode(h1::Message::Chunk(None), &mut write_buf)?;
                    body_done = true;
                    progress = true;
                }
                Poll::Pending => {}
            }
        }
        while !write_buf.is_empty() {
            match Pin::new(&mut io).poll_write(cx, &write_buf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(n)) => {
                    let _ = write_buf.split_to(n);
                    progress = true;
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => break,
            }
        }
        if body_done && write_buf.is_empty() {
            return match Pin::new(&mut io).poll_flush(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(_) => Poll::Ready(Ok(())),
            };
        }
        if let Some(tx) = payload_tx.as_mut() {
            read_buf.reserve(4096);
            match poll_read_buf(Pin::new(&mut io), cx, &mut read_buf) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    tx.feed_eof();
                    payload_tx = None;
                    progress = true;
                }
                Poll::Ready(Ok(_)) => {
                    tx.feed_data(read_buf.split().freeze());
                    progress = true;
                }
                Poll::Pending => {}
            }
        }
        if !progress {
            return Poll::Pending;
        }
    })
    .await
    .map_err(|e: std::io::Error| Error::from(e))?;
    let _ = poll_fn(|cx| Pin::new(&mut io).poll_shutdown(cx)).await;
    Ok(())
}

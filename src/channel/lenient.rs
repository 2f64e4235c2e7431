//! An SMTP stream that turns every reply line into valid UTF-8.
//!
//! Some servers answer in GBK (QQ mail sent `535` texts in GBK). lettre
//! reads replies as UTF-8 and fails on such bytes, losing the server's
//! words. This wrapper decodes each line that is not UTF-8 as GB18030 (a
//! superset of GBK) before lettre reads it, so an error is always shown in
//! full. It can also replay a greeting, for a connection whose STARTTLS
//! upgrade Herald performed itself.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use lettre::transport::smtp::client::AsyncTokioStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Decodes `line` as UTF-8, or as GB18030 when it is not UTF-8.
pub fn decode_reply(line: &[u8]) -> String {
    match std::str::from_utf8(line) {
        Ok(text) => text.to_owned(),
        Err(_) => encoding_rs::GB18030.decode(line).0.into_owned(),
    }
}

pub struct LenientStream<S> {
    inner: S,
    peer: SocketAddr,
    /// Bytes read from the server that do not yet form a whole line.
    raw: Vec<u8>,
    /// Decoded bytes waiting to be read by lettre.
    ready: Vec<u8>,
    eof: bool,
}

impl<S> LenientStream<S> {
    pub fn new(inner: S, peer: SocketAddr, replay: Option<&str>) -> LenientStream<S> {
        LenientStream {
            inner,
            peer,
            raw: Vec::new(),
            ready: replay.map(|s| s.as_bytes().to_vec()).unwrap_or_default(),
            eof: false,
        }
    }

    fn decode_complete_lines(&mut self) {
        while let Some(end) = self.raw.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.raw.drain(..=end).collect();
            self.ready.extend_from_slice(decode_reply(&line).as_bytes());
        }
        if self.eof && !self.raw.is_empty() {
            let rest = std::mem::take(&mut self.raw);
            self.ready.extend_from_slice(decode_reply(&rest).as_bytes());
        }
    }
}

impl<S> std::fmt::Debug for LenientStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LenientStream")
            .field("peer", &self.peer)
            .finish()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LenientStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 4096];
            let mut chunk_buf = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut chunk_buf) {
                Poll::Ready(Ok(())) => {
                    let filled = chunk_buf.filled();
                    if filled.is_empty() {
                        this.eof = true;
                    } else {
                        this.raw.extend_from_slice(filled);
                    }
                    this.decode_complete_lines();
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LenientStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Send + Sync + Unpin> AsyncTokioStream for LenientStream<S> {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn gbk_reply_is_decoded() {
        let (bytes, _, _) = encoding_rs::GBK.encode("535 Error: 请使用授权码登录\r\n");
        assert!(std::str::from_utf8(&bytes).is_err());
        assert_eq!(decode_reply(&bytes), "535 Error: 请使用授权码登录\r\n");
    }

    #[tokio::test]
    async fn stream_decodes_each_line() {
        let (gbk, _, _) = encoding_rs::GBK.encode("535 登录失败\r\n");
        let mut input = b"220 ready\r\n".to_vec();
        input.extend_from_slice(&gbk);
        let peer: SocketAddr = "127.0.0.1:25".parse().unwrap();
        let mut stream = LenientStream::new(&input[..], peer, Some("220 replay\r\n"));
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "220 replay\r\n220 ready\r\n535 登录失败\r\n");
    }
}

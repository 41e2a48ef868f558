//! Static files: mapping a request path into a root directory without ever
//! leaving it (`..` in any spelling, symlinks pointing out), the MIME type,
//! validators (ETag / If-None-Match) and single byte ranges, then streaming
//! the file to the connection in bounded pieces.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use compio::BufResult;
use compio::io::AsyncReadAt;

use super::response::{Data, Response};
use crate::net::{NetError, TcpConn};

/// Bytes read from the file per write to the connection.
const PIECE: usize = 64 * 1024;

/// Maps the (still percent-encoded) request `path` to a file under `root`
/// (which must be canonical). Errors are the status to answer: 400 for a
/// path that does not decode, 403 for one that would leave the root, 404
/// for what is not there.
pub fn resolve(root: &Path, path: &str) -> Result<PathBuf, u16> {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8().map_err(|_| 400u16)?;
    if decoded.contains('\0') || decoded.contains('\\') {
        return Err(400);
    }
    let mut full = root.to_path_buf();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(403),
            s => {
                // A segment must be a plain name on this platform too (no `C:`).
                let mut parts = Path::new(s).components();
                match (parts.next(), parts.next()) {
                    (Some(Component::Normal(_)), None) => full.push(s),
                    _ => return Err(403),
                }
            }
        }
    }
    let canonical = full.canonicalize().map_err(|_| 404u16)?;
    // A symlink may point anywhere: what it resolves to must be in the root.
    if !canonical.starts_with(root) {
        return Err(403);
    }
    if canonical.is_dir() {
        let index = canonical.join("index.html");
        return match index.canonicalize() {
            Ok(i) if i.starts_with(root) && i.is_file() => Ok(i),
            Ok(_) => Err(403),
            Err(_) => Err(404),
        };
    }
    Ok(canonical)
}

/// The Content-Type for a file name, by extension.
pub fn mime(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" | "md" | "lua" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// A strong validator from the file's size and modification time.
pub fn etag(meta: &std::fs::Metadata) -> String {
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).unwrap_or_default();
    format!("\"{:x}-{:x}\"", meta.len(), mtime.as_nanos())
}

/// Whether an If-None-Match value matches `tag` (weak comparison, §13.1.2).
pub fn none_match(header: &str, tag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    header.trim() == "*" || header.split(',').any(|t| bare(t) == bare(tag))
}

#[derive(Debug, PartialEq, Eq)]
pub enum Range {
    /// No usable Range header: the whole file.
    Full,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Reads a `Range` header against a file of `len` bytes. Only one range is
/// served; a multi-range request gets the whole file, which RFC 9110
/// allows.
pub fn range(header: Option<&str>, len: u64) -> Range {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return Range::Full };
    if spec.contains(',') {
        return Range::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return Range::Full };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    match (a.trim().is_empty(), num(a), num(b)) {
        // `-n`: the last n bytes.
        (true, _, Some(n)) if n > 0 && len > 0 => Range::Part(len.saturating_sub(n), len - 1),
        (true, _, Some(_)) => Range::Unsatisfiable,
        (false, Some(start), _) if start >= len => Range::Unsatisfiable,
        (false, Some(start), None) if b.trim().is_empty() => Range::Part(start, len - 1),
        (false, Some(start), Some(end)) if end >= start => Range::Part(start, end.min(len - 1)),
        _ => Range::Full,
    }
}

/// What the request asked about the file.
pub struct Conditions<'a> {
    pub range: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
}

/// Sends the file at `path` (already resolved) as the response: 200, 206,
/// 304 or 416 by the conditions, with type, length and validators.
pub async fn send(conn: &TcpConn, res: &mut Response, path: &Path, cond: Conditions<'_>) -> Result<(), NetError> {
    let file = match compio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) => {
            res.status = if e.kind() == io::ErrorKind::PermissionDenied { 403 } else { 404 };
            return res.send(conn, Data::Bytes(b"")).await;
        }
    };
    let meta = std::fs::metadata(path).map_err(NetError::from)?;
    if !meta.is_file() {
        res.status = 404;
        return res.send(conn, Data::Bytes(b"")).await;
    }
    let len = meta.len();
    let tag = etag(&meta);
    res.set_header("ETag", Some(&tag));
    res.set_header("Accept-Ranges", Some("bytes"));
    if res.header("content-type").is_none() {
        res.set_header("Content-Type", Some(mime(path)));
    }
    if cond.if_none_match.is_some_and(|h| none_match(h, &tag)) {
        res.status = 304;
        return res.send(conn, Data::Bytes(b"")).await;
    }
    let (start, end) = match range(cond.range, len) {
        Range::Full => (0, len),
        Range::Part(a, b) => {
            res.status = 206;
            res.set_header("Content-Range", Some(&format!("bytes {a}-{b}/{len}")));
            (a, b + 1)
        }
        Range::Unsatisfiable => {
            res.status = 416;
            res.set_header("Content-Range", Some(&format!("bytes */{len}")));
            return res.send(conn, Data::Bytes(b"")).await;
        }
    };
    res.set_header("Content-Length", Some(&(end - start).to_string()));
    if end == start {
        return res.finish(conn).await;
    }
    let mut pos = start;
    let mut buf = Vec::with_capacity(PIECE.min((end - start) as usize));
    while pos < end {
        buf.clear();
        let want = PIECE.min((end - pos) as usize);
        buf.reserve(want);
        let BufResult(got, b) = file.read_at(buf, pos).await;
        buf = b;
        let n = got.map_err(NetError::from)?;
        if n == 0 {
            // The file shrank under us: the promised length cannot be met.
            break;
        }
        buf.truncate(n.min(want));
        res.write(conn, Data::Bytes(&buf)).await?;
        pos += buf.len() as u64;
    }
    res.finish(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(range(None, 10), Range::Full);
        assert_eq!(range(Some("bytes=0-4"), 10), Range::Part(0, 4));
        assert_eq!(range(Some("bytes=5-"), 10), Range::Part(5, 9));
        assert_eq!(range(Some("bytes=-3"), 10), Range::Part(7, 9));
        assert_eq!(range(Some("bytes=-30"), 10), Range::Part(0, 9));
        assert_eq!(range(Some("bytes=8-100"), 10), Range::Part(8, 9));
        assert_eq!(range(Some("bytes=10-"), 10), Range::Unsatisfiable);
        assert_eq!(range(Some("bytes=0-1,4-5"), 10), Range::Full);
        assert_eq!(range(Some("items=0-1"), 10), Range::Full);
        assert_eq!(range(Some("bytes=5-2"), 10), Range::Full);
    }

    #[test]
    fn etags_match_weakly_and_by_star() {
        assert!(none_match("\"a\", W/\"b\"", "\"b\""));
        assert!(none_match("*", "\"x\""));
        assert!(!none_match("\"a\"", "\"b\""));
    }

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = std::env::temp_dir().join(format!("moonport-files-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.txt"), "a").unwrap();
        std::fs::write(root.join("index.html"), "i").unwrap();
        std::fs::write(dir.join("secret"), "s").unwrap();
        let root = root.canonicalize().unwrap();
        assert_eq!(resolve(&root, "/sub/a.txt"), Ok(root.join("sub/a.txt")));
        assert_eq!(resolve(&root, "/sub/%61.txt"), Ok(root.join("sub/a.txt")));
        assert_eq!(resolve(&root, "/"), Ok(root.join("index.html")));
        assert_eq!(resolve(&root, "/../secret"), Err(403));
        assert_eq!(resolve(&root, "/%2e%2e/secret"), Err(403));
        assert_eq!(resolve(&root, "/sub/..%2f..%2fsecret"), Err(403));
        assert_eq!(resolve(&root, "/nope"), Err(404));
        assert_eq!(resolve(&root, "/%ff"), Err(400));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.join("secret"), root.join("link")).unwrap();
            assert_eq!(resolve(&root, "/link"), Err(403));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

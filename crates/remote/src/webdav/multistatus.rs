//! Parsing PROPFIND answers (`207 Multi-Status`) with quick-xml, namespace-aware.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// One `<response>` of a multistatus, with the properties its `200` propstats gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The `href`, as sent (still percent-encoded).
    pub href: String,
    /// `getetag`, raw.
    pub etag: Option<String>,
    /// `getcontentlength`.
    pub size: Option<u64>,
    /// `getlastmodified`, raw (an HTTP date).
    pub modified: Option<String>,
    /// `resourcetype` holds `collection`.
    pub is_dir: bool,
}

#[derive(Default)]
struct Props {
    etag: Option<String>,
    size: Option<u64>,
    modified: Option<String>,
    is_dir: bool,
}

const DAV: &[u8] = b"DAV:";

/// Parses a multistatus body. Elements outside the `DAV:` namespace are ignored; properties
/// in a propstat whose status is not 2xx are dropped.
pub(crate) fn parse(xml: &str) -> Result<Vec<Entry>, String> {
    let mut reader = NsReader::from_str(xml);
    let mut entries = Vec::new();
    // The DAV: element names from the root down to the current element.
    let mut stack: Vec<String> = Vec::new();
    let mut entry: Option<Entry> = None;
    let mut props = Props::default();
    let mut status = String::new();
    let mut text = String::new();
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| format!("malformed XML: {e}"))?;
        let is_dav = matches!(ns, ResolveResult::Bound(n) if n.0.as_bytes() == DAV);
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = if is_dav {
                    e.local_name().as_ref().to_string()
                } else {
                    String::new()
                };
                start(&name, &stack, &mut entry, &mut props, &mut status);
                stack.push(name);
                text.clear();
                if matches!(event, Event::Empty(_)) {
                    end(
                        &mut stack,
                        &mut entry,
                        &mut props,
                        &mut status,
                        &mut entries,
                        "",
                    );
                }
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::CData(t) => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    text.push(c);
                } else if let Some(s) =
                    quick_xml::escape::resolve_predefined_entity(&r.xml10_content())
                {
                    text.push_str(s);
                }
            }
            Event::End(_) => {
                let t = std::mem::take(&mut text);
                end(
                    &mut stack,
                    &mut entry,
                    &mut props,
                    &mut status,
                    &mut entries,
                    &t,
                );
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(entries)
}

fn start(
    name: &str,
    stack: &[String],
    entry: &mut Option<Entry>,
    props: &mut Props,
    status: &mut String,
) {
    let parent = stack.last().map(String::as_str);
    match (name, parent) {
        ("response", _) => *entry = Some(Entry::default()),
        ("propstat", Some("response")) => {
            *props = Props::default();
            status.clear();
        }
        ("collection", Some("resourcetype")) => props.is_dir = true,
        _ => {}
    }
}

fn end(
    stack: &mut Vec<String>,
    entry: &mut Option<Entry>,
    props: &mut Props,
    status: &mut String,
    entries: &mut Vec<Entry>,
    text: &str,
) {
    let Some(name) = stack.pop() else { return };
    let parent = stack.last().map(String::as_str);
    let text = text.trim();
    match (name.as_str(), parent) {
        ("href", Some("response")) => {
            if let Some(e) = entry {
                e.href = text.to_string();
            }
        }
        ("getetag", Some("prop")) if !text.is_empty() => props.etag = Some(text.to_string()),
        ("getcontentlength", Some("prop")) => props.size = text.parse().ok(),
        ("getlastmodified", Some("prop")) if !text.is_empty() => {
            props.modified = Some(text.to_string())
        }
        ("status", Some("propstat")) => *status = text.to_string(),
        ("propstat", Some("response")) => {
            // "HTTP/1.1 200 OK"; a propstat without a status is taken as fine.
            let ok = status
                .split_whitespace()
                .nth(1)
                .is_none_or(|code| code.starts_with('2'));
            if let (true, Some(e)) = (ok, entry.as_mut()) {
                let p = std::mem::take(props);
                e.etag = e.etag.take().or(p.etag);
                e.size = e.size.or(p.size);
                e.modified = e.modified.take().or(p.modified);
                e.is_dir |= p.is_dir;
            }
        }
        ("response", _) => {
            if let Some(e) = entry.take()
                && !e.href.is_empty()
            {
                entries.push(e);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefixed_and_default_namespaces() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<d:multistatus xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns">
 <d:response><d:href>/dav/</d:href><d:propstat><d:prop>
   <d:resourcetype><d:collection/></d:resourcetype><d:getetag>"dir"</d:getetag>
 </d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
 <response xmlns="DAV:"><href>/dav/a%20b.json</href>
  <propstat><prop><getcontentlength>12</getcontentlength>
   <getetag>W/"abc"</getetag><getlastmodified>Sun, 22 Nov 2026 02:07:37 GMT</getlastmodified>
   <resourcetype/></prop><status>HTTP/1.1 200 OK</status></propstat>
  <propstat><prop><getcontenttype/></prop><status>HTTP/1.1 404 Not Found</status></propstat>
 </response>
 <ns0:response xmlns:ns0="DAV:"><ns0:href>/dav/x&amp;y/</ns0:href><ns0:propstat><ns0:prop>
  <ns0:resourcetype><ns0:collection /></ns0:resourcetype><ns0:getetag></ns0:getetag>
  <s:getetag>"not-dav"</s:getetag>
 </ns0:prop><ns0:status>HTTP/1.1 200 OK</ns0:status></ns0:propstat></ns0:response>
</d:multistatus>"#;
        let entries = parse(xml).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].href, "/dav/");
        assert!(entries[0].is_dir);
        assert_eq!(entries[0].etag.as_deref(), Some("\"dir\""));
        assert_eq!(entries[1].href, "/dav/a%20b.json");
        assert_eq!(entries[1].size, Some(12));
        assert_eq!(entries[1].etag.as_deref(), Some("W/\"abc\""));
        assert!(!entries[1].is_dir);
        assert_eq!(
            entries[1].modified.as_deref(),
            Some("Sun, 22 Nov 2026 02:07:37 GMT")
        );
        assert_eq!(entries[2].href, "/dav/x&y/");
        assert!(entries[2].is_dir);
        assert_eq!(entries[2].etag, None);
    }

    #[test]
    fn malformed_xml_is_an_error() {
        assert!(parse("<d:multistatus xmlns:d=\"DAV:\"><d:response>").is_ok());
        assert!(parse("<a></b>").is_err());
    }
}

use super::*;

fn policy(origins: &[&str]) -> Policy {
    Policy {
        path: "/mqtt".into(),
        origins: origins.iter().map(|o| o.to_string()).collect(),
    }
}

fn request(extra: &[&str]) -> Vec<u8> {
    let mut r = String::from("GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:8083\r\n");
    r.push_str("Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n");
    r.push_str("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n");
    for h in extra {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

#[test]
fn the_rfc_example_key_gives_the_rfc_accept() {
    // RFC 6455 §1.3.
    assert_eq!(
        accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn a_browser_request_is_upgraded_with_mqtt_and_bytes_after_it_are_left() {
    let mut r = request(&[
        "Sec-WebSocket-Protocol: mqtt",
        "Origin: https://app.example",
    ]);
    let len = r.len();
    r.extend_from_slice(&[0x82, 0x80]); // the first frame, pipelined
    let (u, n) = parse(&r, &policy(&["HTTPS://APP.example"]))
        .unwrap()
        .unwrap();
    assert_eq!(n, len);
    assert_eq!(u.protocol, Some("mqtt"));
    let resp = String::from_utf8(response(&u)).unwrap();
    assert!(resp.starts_with("HTTP/1.1 101 "));
    assert!(resp.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(resp.contains("Sec-WebSocket-Protocol: mqtt\r\n"));
    assert!(resp.ends_with("\r\n\r\n"));
}

#[test]
fn the_legacy_subprotocol_is_chosen_only_without_mqtt() {
    let p = policy(&[]);
    let pick = |h: &str| parse(&request(&[h]), &p).map(|r| r.unwrap().0.protocol);
    assert_eq!(
        pick("Sec-WebSocket-Protocol: mqttv3.1"),
        Ok(Some("mqttv3.1"))
    );
    assert_eq!(
        pick("Sec-WebSocket-Protocol: mqttv3.1, mqtt"),
        Ok(Some("mqtt"))
    );
    assert_eq!(pick("X-Other: 1"), Ok(None));
    assert!(matches!(
        pick("Sec-WebSocket-Protocol: chat"),
        Err(Reject::BadRequest(_))
    ));
}

#[test]
fn an_incomplete_request_asks_for_more_until_the_bound() {
    let r = request(&[]);
    for cut in [0, 1, 20, r.len() - 1] {
        assert_eq!(parse(&r[..cut], &policy(&[])), Ok(None), "cut {cut}");
    }
    let mut long = b"GET /mqtt HTTP/1.1\r\nX: ".to_vec();
    long.resize(WS_HANDSHAKE_BYTES_MAX, b'a');
    assert_eq!(parse(&long, &policy(&[])), Err(Reject::TooLarge));
}

#[test]
fn refusals_map_to_their_statuses() {
    let p = policy(&["https://app.example"]);
    let status = |r: &[u8]| match parse(r, &p) {
        Ok(Some(_)) => 101,
        Ok(None) => 0,
        Err(Reject::BadRequest(_)) => 400,
        Err(Reject::NotFound) => 404,
        Err(Reject::Forbidden) => 403,
        Err(Reject::Version) => 426,
        Err(Reject::TooLarge) => 431,
    };
    let ok = request(&[]);
    assert_eq!(status(&ok), 101, "no Origin: not a browser, admitted");
    let swap = |from: &str, to: &str| {
        String::from_utf8(ok.clone())
            .unwrap()
            .replace(from, to)
            .into_bytes()
    };
    assert_eq!(status(&swap("GET /mqtt ", "GET /other ")), 404);
    assert_eq!(status(&swap("GET /mqtt ", "GET /mqtt?x=1 ")), 101);
    assert_eq!(status(&swap("GET /mqtt ", "GET http://h:1/mqtt ")), 101);
    assert_eq!(status(&swap("GET ", "POST ")), 400);
    assert_eq!(status(&swap("HTTP/1.1\r\n", "HTTP/1.0\r\n")), 400);
    assert_eq!(status(&swap("Upgrade: websocket", "Upgrade: h2c")), 400);
    assert_eq!(status(&swap("keep-alive, Upgrade", "close")), 400);
    assert_eq!(status(&swap("Version: 13", "Version: 8")), 426);
    assert_eq!(status(&swap("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=")), 400);
    assert_eq!(status(&swap("Host: 127.0.0.1:8083\r\n", "")), 400);
    assert_eq!(status(&swap("Host:", " Host:")), 400);
    assert_eq!(status(&request(&["Origin: https://evil.example"])), 403);
    assert_eq!(status(&request(&["Origin: https://app.example"])), 101);
    assert_eq!(
        status(&request(&[
            "Origin: https://app.example",
            "Origin: https://x"
        ])),
        400
    );
    assert_eq!(status(b"\r\n\r\n"), 400);
    assert_eq!(status(b"GET /mqtt\r\n\r\n"), 400);
    assert!(Reject::Version
        .response()
        .windows(25)
        .any(|w| w == b"Sec-WebSocket-Version: 13"));
}

#[test]
fn a_plain_get_under_chat_is_a_page_and_an_upgrade_there_is_not() {
    let p = policy(&[]);
    let get = |target: &str, extra: &str| {
        let r = format!("GET {target} HTTP/1.1\r\nHost: h\r\n{extra}\r\n");
        parse_request(r.as_bytes(), &p)
    };
    let page = |target: &str| match get(target, "") {
        Ok(Some((Request::Page(pg), _))) => Some(pg),
        _ => None,
    };
    let Some(Page::Asset(ctype, cache, body)) = page("/chat") else {
        panic!("no page for /chat");
    };
    assert_eq!(ctype, "text/html; charset=utf-8");
    assert_eq!(cache, "no-cache");
    assert_eq!(Some((ctype, body)), crate::web::chat_asset("/chat"));
    assert!(page("/chat/?nick=a").is_some());
    assert_eq!(page("/chat/config.json"), Some(Page::Config));
    let (head, body) = Page::Config.response(&p);
    assert_eq!(&body[..], br#"{"mqtt_path":"/mqtt"}"#);
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(head.contains("Content-Length: 21\r\n"));
    assert!(head.ends_with("Connection: close\r\n\r\n"));
    // Unknown files, other paths, an Upgrade header, a non-GET: no page.
    assert_eq!(get("/chat/assets/nope.js", ""), Err(Reject::NotFound));
    assert_eq!(get("/chatroom", ""), Err(Reject::NotFound));
    assert_eq!(get("/", ""), Err(Reject::NotFound));
    assert_eq!(
        get("/chat", "Upgrade: websocket\r\n"),
        Err(Reject::NotFound)
    );
    assert_eq!(
        parse(b"GET /chat HTTP/1.1\r\nHost: h\r\n\r\n", &p),
        Err(Reject::NotFound)
    );
    assert!(matches!(
        parse_request(b"POST /chat HTTP/1.1\r\nHost: h\r\n\r\n", &p),
        Err(Reject::BadRequest(_))
    ));
    // The bound holds for pages as for upgrades.
    let mut long = b"GET /chat HTTP/1.1\r\nX: ".to_vec();
    long.resize(WS_HANDSHAKE_BYTES_MAX, b'a');
    assert_eq!(parse_request(&long, &p), Err(Reject::TooLarge));
}

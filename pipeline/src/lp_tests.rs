use super::*;
use proptest::prelude::*;

fn one(body: &str) -> ParsedLine<'_> {
    let mut it = parse_lines(body.as_bytes());
    let item = it.next().expect("a line");
    assert!(it.next().is_none(), "exactly one line");
    item.parsed.expect("parses")
}

fn err(body: &str) -> String {
    let item = parse_lines(body.as_bytes()).next().expect("a line");
    item.parsed.expect_err("must fail")
}

#[test]
fn parses_basic_line() {
    let l = one("cpu,host=a,region=west usage=1.5,count=3i,ok=t,name=\"x y\",big=7u 1700000000");
    assert_eq!(l.measurement, "cpu");
    assert_eq!(l.series, b"cpu,host=a,region=west");
    assert_eq!(*l.tags, [("host".into(), "a".into()), ("region".into(), "west".into())]);
    assert_eq!(
        l.fields,
        vec![
            ("usage".into(), FieldValue::Float(1.5)),
            ("count".into(), FieldValue::Integer(3)),
            ("ok".into(), FieldValue::Boolean(true)),
            ("name".into(), FieldValue::String("x y".into())),
            ("big".into(), FieldValue::UInteger(7)),
        ]
    );
    assert_eq!(l.timestamp, Some(1_700_000_000));
}

#[test]
fn all_boolean_spellings() {
    for t in ["t", "T", "true", "True", "TRUE"] {
        assert_eq!(one(&format!("m f={t}")).fields[0].1, FieldValue::Boolean(true));
    }
    for f in ["f", "F", "false", "False", "FALSE"] {
        assert_eq!(one(&format!("m f={f}")).fields[0].1, FieldValue::Boolean(false));
    }
}

#[test]
fn floats_in_every_syntax() {
    assert_eq!(one("m f=1").fields[0].1, FieldValue::Float(1.0));
    assert_eq!(one("m f=-1e3").fields[0].1, FieldValue::Float(-1000.0));
    assert_eq!(one("m f=.5").fields[0].1, FieldValue::Float(0.5));
    assert_eq!(one("m f=5.").fields[0].1, FieldValue::Float(5.0));
    assert_eq!(one("m f=+2.25").fields[0].1, FieldValue::Float(2.25));
    assert_eq!(one("m f=-0.0").fields[0].1, FieldValue::Float(-0.0));
    assert_eq!(one("m f=0.1").fields[0].1, FieldValue::Float(0.1));
    assert_eq!(one("m f=123456789012345").fields[0].1, FieldValue::Float(123456789012345.0));
    assert_eq!(one("m f=1234567890123456789").fields[0].1, FieldValue::Float(1234567890123456789.0));
    assert_eq!(one("m f=9007199254740993.5").fields[0].1, FieldValue::Float(9007199254740994.0));
    assert!(err("m f=1.2.3").contains("invalid value '1.2.3'"), "{}", err("m f=1.2.3"));
    assert!(err("m f=-").contains("invalid value '-'"), "{}", err("m f=-"));
}

proptest! {
    /// The one-pass decimal path and the full parser agree on every value they both read.
    #[test]
    fn plain_decimals_read_as_the_full_parser_reads_them(int in 0u64..10_000_000_000_000_000, frac in 0u64..1_000_000_000, width in 0usize..10, neg: bool) {
        let text = match width {
            0 => format!("{}{int}", if neg { "-" } else { "" }),
            w => format!("{}{int}.{:0w$}", if neg { "-" } else { "" }, frac % 10u64.pow(w as u32)),
        };
        let expected = lexical_core::parse::<f64>(text.as_bytes()).unwrap();
        let line = format!("m f={text}");
        prop_assert_eq!(one(&line).fields[0].1.clone(), FieldValue::Float(expected), "{}", text);
        let got = match one(&line).fields[0].1 { FieldValue::Float(f) => f, _ => f64::NAN };
        prop_assert_eq!(got.to_bits(), expected.to_bits(), "{}", text);
    }
}

#[test]
fn escapes_in_names_values_and_strings() {
    let l = one(r#"my\ meas\,ure,ta\=g\ k=v\,a\ l\=ue fi\ eld="a \"q\" \\ b" -5"#);
    assert_eq!(l.measurement, "my meas,ure");
    assert_eq!(l.tags[0], ("ta=g k".into(), "v,a l=ue".into()));
    assert_eq!(l.fields[0], ("fi eld".into(), FieldValue::String(r#"a "q" \ b"#.into())));
    assert_eq!(l.timestamp, Some(-5));
}

#[test]
fn comments_blank_lines_and_line_numbers() {
    let body = "# comment\n\ncpu f=1\n   \r\ncpu f=2 10\r\n# x\ncpu f=";
    let items: Vec<_> = parse_lines(body.as_bytes()).collect();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].line_number, 3);
    assert_eq!(items[1].line_number, 5);
    assert_eq!(items[1].text, b"cpu f=2 10");
    assert_eq!(items[2].line_number, 7);
    assert!(items[2].parsed.is_err());
}

#[test]
fn newline_inside_string_field_counts_lines() {
    let body = "m s=\"a\nb\" 1\nm f=1 2\nbad";
    let items: Vec<_> = parse_lines(body.as_bytes()).collect();
    assert_eq!(items[0].parsed.as_ref().unwrap().fields[0].1, FieldValue::String("a\nb".into()));
    assert_eq!(items[1].line_number, 3);
    assert_eq!(items[2].line_number, 4);
}

#[test]
fn unterminated_string_does_not_swallow_next_lines() {
    let body = "m s=\"abc\nm f=1 2";
    let items: Vec<_> = parse_lines(body.as_bytes()).collect();
    // The first line's quote runs to the end: an error; the second line is still its own line.
    assert_eq!(items.len(), 2);
    assert!(items[0].parsed.is_err());
    assert_eq!(items[1].line_number, 2);
    assert!(items[1].parsed.is_ok());
}

#[test]
fn malformed_corpus_gives_errors_not_panics() {
    let corpus = [
        "cpu",
        "cpu ",
        "cpu,",
        "cpu,host",
        "cpu,host=",
        "cpu,=a f=1",
        "cpu,host=a",
        "cpu f",
        "cpu f=",
        "cpu =1",
        "cpu f=1,",
        "cpu f=1,,g=2",
        "cpu f=abc",
        "cpu f=1x",
        "cpu f=nan",
        "cpu f=inf",
        "cpu f=NaN",
        "cpu f=1e999",
        "cpu f=99999999999999999999i",
        "cpu f=-1u",
        "cpu f=\"unterminated",
        "cpu f=1 notatime",
        "cpu f=1 1 2",
        "cpu f=1 99999999999999999999",
        ",tag=a f=1",
        " f=1",
        "cpu f=1i f=2",
        "cpu,a=b,c f=1",
        "cpu f=tru",
        "cpu\\",
        "\\",
        "cpu f=\"\\",
        "cpu f=1\\ 2",
        "cpu\u{0}\u{1} f=\u{7f}",
    ];
    for line in corpus {
        let item = parse_lines(line.as_bytes()).next();
        match item {
            Some(item) => assert!(item.parsed.is_err(), "{line:?} must be an error, got {:?}", item.parsed),
            None => panic!("{line:?} yielded nothing"),
        }
    }
    assert!(err("cpu f=1 abc").contains("timestamp"));
    assert!(err("cpu,host= f=1").contains("empty value"));
}

#[test]
fn invalid_utf8_is_an_error() {
    let body = b"cpu,h=\xff f=1";
    let item = parse_lines(body).next().unwrap();
    assert!(item.parsed.is_err());
}

fn render(m: &str, tags: &[(String, String)], fields: &[(String, FieldValue<'static>)], ts: Option<i64>) -> String {
    ParsedLine {
        measurement: m.into(),
        series: b"",
        tags: tags.iter().map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str()))).collect(),
        fields: fields.iter().map(|(k, v)| (Cow::Borrowed(k.as_str()), v.clone())).collect(),
        timestamp: ts,
    }
    .to_line_protocol()
}

fn name() -> impl Strategy<Value = String> {
    // Any printable text, including the characters that need escaping, but no leading '#'
    // (a comment) and no newline (names cannot hold one).
    "[^\n\r#\t][^\n\r\t]{0,12}".prop_filter("not blank", |s| !s.trim().is_empty() && !s.starts_with(' '))
}

fn field_value() -> impl Strategy<Value = FieldValue<'static>> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(FieldValue::Float),
        any::<i64>().prop_map(FieldValue::Integer),
        any::<u64>().prop_map(FieldValue::UInteger),
        any::<bool>().prop_map(FieldValue::Boolean),
        ".{0,20}".prop_map(|s| FieldValue::String(s.into())),
    ]
}

proptest! {
    #[test]
    fn round_trip(
        m in name(),
        tags in proptest::collection::vec((name(), name()), 0..4),
        fields in proptest::collection::vec((name(), field_value()), 1..4),
        ts in proptest::option::of(any::<i64>()),
    ) {
        let text = render(&m, &tags, &fields, ts);
        let body = format!("{text}\n{text}\n");
        let items: Vec<_> = parse_lines(body.as_bytes()).collect();
        prop_assert_eq!(items.len(), 2, "{}", text);
        for item in items {
            let line = item.parsed.map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
            prop_assert_eq!(line.measurement.as_ref(), m.as_str());
            prop_assert!(text.as_bytes().starts_with(line.series), "{}", text);
            prop_assert_eq!(text.as_bytes().get(line.series.len()), Some(&b' '));
            let got_tags: Vec<(String, String)> = line.tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            prop_assert_eq!(&got_tags, &tags);
            prop_assert_eq!(line.fields.len(), fields.len());
            for ((gk, gv), (k, v)) in line.fields.iter().zip(fields.iter()) {
                prop_assert_eq!(gk.as_ref(), k.as_str());
                prop_assert_eq!(gv, v);
            }
            prop_assert_eq!(line.timestamp, ts);
        }
    }

    /// The per-body series memory only skips work: every line of a body with repeated series
    /// parses exactly as it does alone, bad lines and escapes included.
    #[test]
    fn repeated_series_parse_as_they_do_alone(
        series in proptest::collection::vec("[a-c,=\\\\ ]{1,10}", 1..4),
        lines in proptest::collection::vec((0usize..4, "[a-c0-9=.,i ]{0,10}"), 1..12),
    ) {
        let texts: Vec<String> = lines.iter().map(|(i, rest)| format!("{} {rest}", series[i % series.len()])).collect();
        let body = texts.join("\n");
        let together: Vec<_> = parse_lines(body.as_bytes()).map(|i| (i.text, i.parsed)).collect();
        let alone: Vec<_> = texts.iter().flat_map(|t| parse_lines(t.as_bytes()).map(|i| (i.text, i.parsed)).collect::<Vec<_>>()).collect();
        prop_assert_eq!(together, alone);
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        for item in parse_lines(&body) {
            prop_assert!(item.line_number >= 1);
        }
    }

    #[test]
    fn arbitrary_lp_like_text_never_panics(body in "[a-z ,=\"\\\\\n0-9.ituf#-]{0,120}") {
        let n = parse_lines(body.as_bytes()).count();
        prop_assert!(n <= body.len());
    }
}

#[test]
fn messages_name_the_field_and_value() {
    assert_eq!(err("cpu usage=oops 1"), "invalid value 'oops' for field 'usage'");
    assert_eq!(err("cpu a=1,usage= 1"), "field 'usage' has no value");
    assert_eq!(err("cpu,host f=1"), "tag 'host' has no '=' and value");
    assert_eq!(err("cpu s=\"abc"), "unterminated string for field 's'");
    assert_eq!(err("cpu f=1 12x"), "invalid timestamp '12x'");
}

#[test]
fn timestamps_take_a_sign_and_must_fit_i64() {
    let ts = |t: &str| parse_lines(format!("m f=1 {t}").as_bytes()).next().unwrap().parsed.map(|l| l.timestamp);
    assert_eq!(ts("-9223372036854775808"), Ok(Some(i64::MIN)));
    assert_eq!(ts("9223372036854775807"), Ok(Some(i64::MAX)));
    assert_eq!(ts("+5"), Ok(Some(5)));
    assert_eq!(ts("-0"), Ok(Some(0)));
    assert_eq!(ts("007 "), Ok(Some(7)));
    assert_eq!(ts("1\r"), Ok(Some(1)));
    for bad in ["9223372036854775808", "-9223372036854775809", "-", "+", "5-", "1.5", "12x", "99999999999999999999999"] {
        assert_eq!(ts(bad), Err(format!("invalid timestamp '{bad}'")), "{bad}");
    }
}

//! Certificate logins: the user a verified client certificate names. With mutual TLS
//! (`client_ca_file`), rustls has checked the chain before a protocol sees the connection; this
//! module only reads the leaf certificate's subject, as RabbitMQ's `ssl_cert_login_from` does:
//! the whole distinguished name (RFC 4514, its default and Kafka's principal) or the common name.

use std::fmt::Write;

use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// Which part of the subject is the user name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CertLoginFrom {
    /// `CN=alice,O=Example` (RFC 4514: the last RDN first, as RabbitMQ and Kafka print it).
    #[default]
    DistinguishedName,
    /// `alice`: the subject's (last) common name.
    CommonName,
}

impl CertLoginFrom {
    pub fn parse(text: &str) -> Option<CertLoginFrom> {
        match text {
            "distinguished_name" => Some(CertLoginFrom::DistinguishedName),
            "common_name" => Some(CertLoginFrom::CommonName),
            _ => None,
        }
    }
}

/// The user name a DER certificate's subject gives; `None` when it does not parse or has no
/// such part (a certificate without a CN, under `CommonName`).
pub fn login_name(der: &[u8], from: CertLoginFrom) -> Option<String> {
    let (_, certificate) = X509Certificate::from_der(der).ok()?;
    let subject = certificate.subject();
    match from {
        CertLoginFrom::DistinguishedName => distinguished_name(subject),
        CertLoginFrom::CommonName => subject
            .iter_common_name()
            .last()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string),
    }
}

/// RFC 4514's string form: RDNs last first, joined by `,`; `+` within one; values escaped.
fn distinguished_name(name: &X509Name<'_>) -> Option<String> {
    let mut out = String::new();
    for (i, rdn) in name
        .iter_rdn()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        for (j, attribute) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attribute.attr_type().to_id_string();
            let _ = write!(out, "{}=", short_name(&oid).unwrap_or(&oid));
            escape_into(&mut out, attribute.as_str().ok()?);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// RFC 4514 §3's names (and `emailAddress`, as OpenSSL and Java print it).
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// RFC 4514 §2.4: `,+"\<>;` escaped anywhere, `#` or a space first, a space last.
fn escape_into(out: &mut String, value: &str) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    /// `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes
    /// -subj "/C=DE/O=Porter, Inc./OU=ops/CN=alice"`; OpenSSL prints its subject (`-nameopt
    /// RFC2253`) as `CN=alice,OU=ops,O=Porter\, Inc.,C=DE`.
    const ALICE: &str = "-----BEGIN CERTIFICATE-----
MIIB2jCCAX+gAwIBAgIUZ9MYLcHiMflwA51FqQTb3dZ4ZPAwCgYIKoZIzj0EAwIw
QjELMAkGA1UEBhMCREUxFTATBgNVBAoMDFBvcnRlciwgSW5jLjEMMAoGA1UECwwD
b3BzMQ4wDAYDVQQDDAVhbGljZTAeFw0yNjEyMDYwNTM2MDRaFw0zNjEyMDMwNTM2
MDRaMEIxCzAJBgNVBAYTAkRFMRUwEwYDVQQKDAxQb3J0ZXIsIEluYy4xDDAKBgNV
BAsMA29wczEOMAwGA1UEAwwFYWxpY2UwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC
AAQ0bd23S3QZhiLStYUKqQikOX57L/U4Q10xzK8k4vQs7yjABPYTD9xSlPbYt+qF
86BK5xBRuDkkj0iCOk0hsqwko1MwUTAdBgNVHQ4EFgQUrm3yGIUWKb9A4sg1C6UE
kN5/Gx8wHwYDVR0jBBgwFoAUrm3yGIUWKb9A4sg1C6UEkN5/Gx8wDwYDVR0TAQH/
BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEA3bPIIiedzlqefOM1V9Cn7HA/J7RJ
vgvHJunJTz1E2b0CIQDaz9g/T73QSOSGl1NzNAM8A4Po2/X85AQUoKNA1MSMHQ==
-----END CERTIFICATE-----";

    #[test]
    fn the_subject_as_rabbitmq_and_kafka_print_it() {
        let der = CertificateDer::from_pem_slice(ALICE.as_bytes()).unwrap();
        assert_eq!(
            login_name(&der, CertLoginFrom::DistinguishedName).as_deref(),
            Some("CN=alice,OU=ops,O=Porter\\, Inc.,C=DE")
        );
        assert_eq!(
            login_name(&der, CertLoginFrom::CommonName).as_deref(),
            Some("alice")
        );
        assert_eq!(
            login_name(b"not a certificate", CertLoginFrom::CommonName),
            None
        );
    }

    #[test]
    fn escapes_as_rfc_4514_says() {
        let mut out = String::new();
        escape_into(&mut out, "#Porter, Inc. ");
        assert_eq!(out, "\\#Porter\\, Inc.\\ ");
    }
}

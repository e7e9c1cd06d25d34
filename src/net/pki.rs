//! The federation's licensing authority as files: a CA, one certificate + key per institution
//! node, per institution application and per regulator, an Ed25519 checkpoint key per node, the federation's subject
//! HMAC key, and a CRL. Used by `bureau pki`, the demo and the tests (certificates made at test
//! time, never checked in).

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber,
};
use rustls::pki_types::{pem::PemObject, CertificateDer, CertificateRevocationListDer};
use time::{Duration, OffsetDateTime};

use crate::net::{
    directory::Directory,
    identity::{is_valid_member_id, Identity, Role},
};

/// How long leaf certificates (licences) are valid.
const LEAF_VALIDITY: Duration = Duration::days(365);
/// How long the authority's certificate is valid.
const CA_VALIDITY: Duration = Duration::days(3650);
/// How long a CRL is valid before a fresh one is due.
const CRL_VALIDITY: Duration = Duration::days(30);

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Generating or signing.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A file that is not what it should be.
    #[error("{0}")]
    Invalid(String),
}

/// What `pki init` makes.
#[derive(Debug, Clone)]
pub struct PkiSpec {
    /// The federation's name (SPIFFE trust domain), e.g. `bureau.example`.
    pub federation: String,
    /// Institution ids, one node certificate each.
    pub institutions: Vec<String>,
    /// Regulator ids, one certificate each.
    pub regulators: Vec<String>,
    /// Application names issued for every institution (besides its node), e.g. `cli`.
    pub apps: Vec<String>,
    /// Extra DNS names for node certificates (besides `localhost` and 127.0.0.1), so tools such
    /// as grpcurl can check the server name.
    pub hosts: Vec<String>,
}

/// The paths of one member's files inside a PKI directory.
#[derive(Debug, Clone)]
pub struct MemberFiles {
    /// Certificate, PEM.
    pub cert: PathBuf,
    /// Private key, PEM, mode 0600.
    pub key: PathBuf,
    /// Ed25519 checkpoint signing key (PKCS#8 PEM, 0600); nodes only.
    pub log_key: PathBuf,
    /// Ed25519 witness key, cosigning peers' checkpoints (PKCS#8 PEM, 0600; its cosignature/v1
    /// verifier key beside it with the extension `pub`); nodes only.
    pub witness_key: PathBuf,
    /// The age X25519 identity that decrypts the institution's backups (0600; its recipient
    /// `age1…` beside it with the extension `pub`); nodes only.
    pub backup_key: PathBuf,
}

/// File layout of a PKI directory.
#[derive(Debug, Clone)]
pub struct PkiDir(pub PathBuf);

impl PkiDir {
    /// The authority's certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.0.join("ca.pem")
    }
    /// The authority's private key.
    pub fn ca_key(&self) -> PathBuf {
        self.0.join("ca.key")
    }
    /// The revocation list.
    pub fn crl(&self) -> PathBuf {
        self.0.join("crl.pem")
    }
    /// The federation's subject-id HMAC key, hex.
    pub fn subject_key(&self) -> PathBuf {
        self.0.join("subject-key.hex")
    }
    /// The signed member directory nodes load (`federation.directory`).
    pub fn directory(&self) -> PathBuf {
        self.0.join("directory.note")
    }
    /// The authority's directory signing key (Ed25519, PKCS#8).
    pub fn directory_key(&self) -> PathBuf {
        self.0.join("directory.key")
    }
    /// Its verifier key string, which nodes are given (`federation.directory_key`).
    pub fn directory_verifier(&self) -> PathBuf {
        self.0.join("directory.pub")
    }
    /// One member's files: institution `id`'s node, its [`DEFAULT_APP`] application, or
    /// regulator `id`.
    pub fn member(&self, role: Role, id: &str) -> MemberFiles {
        match role {
            Role::Node => self.files(&format!("institution-{id}")),
            Role::Application => self.app(id, DEFAULT_APP),
            Role::Regulator => self.files(&format!("regulator-{id}")),
        }
    }

    /// The files of application `name` of institution `id`.
    pub fn app(&self, id: &str, name: &str) -> MemberFiles {
        self.files(&format!("institution-{id}-app-{name}"))
    }

    fn files(&self, stem: &str) -> MemberFiles {
        MemberFiles {
            cert: self.0.join(format!("{stem}.pem")),
            key: self.0.join(format!("{stem}.key")),
            log_key: self.0.join(format!("{stem}.log.key")),
            witness_key: self.0.join(format!("{stem}.witness.key")),
            backup_key: self.0.join(format!("{stem}.backup.key")),
        }
    }
}

/// The application every institution gets from `pki init` unless others are named: the
/// operator's command line (an application of the institution, never its node's key).
pub const DEFAULT_APP: &str = "cli";

/// Creates a new authority and every member's files in `out` (created if missing).
pub fn init(spec: &PkiSpec, out: &Path) -> Result<PkiDir, PkiError> {
    if spec.federation.is_empty() || spec.federation.contains('/') {
        return Err(PkiError::Invalid(format!("bad federation name {:?}", spec.federation)));
    }
    for id in spec.institutions.iter().chain(&spec.regulators).chain(&spec.apps) {
        if !is_valid_member_id(id) {
            return Err(PkiError::Invalid(format!("bad member id {id:?}: use 1-63 of [a-z0-9-]")));
        }
    }
    fs::create_dir_all(out).map_err(|source| PkiError::Io { path: out.to_owned(), source })?;
    let dir = PkiDir(out.to_owned());
    let now = OffsetDateTime::now_utc();

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name.push(DnType::CommonName, format!("{} licensing authority", spec.federation));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca.not_before = now - Duration::minutes(5);
    ca.not_after = now + CA_VALIDITY;
    ca.serial_number = Some(random_serial());
    let ca_cert = ca.self_signed(&ca_key)?;
    write_public(&dir.ca_cert(), &ca_cert.pem())?;
    write_secret(&dir.ca_key(), &ca_key.serialize_pem())?;
    let issuer = Issuer::new(ca, ca_key);

    let default_apps = [DEFAULT_APP.to_owned()];
    let apps = if spec.apps.is_empty() { &default_apps[..] } else { &spec.apps[..] };
    let members = spec
        .institutions
        .iter()
        .flat_map(|id| {
            std::iter::once(Identity::node(&spec.federation, id))
                .chain(apps.iter().map(|app| Identity::application(&spec.federation, id, app)))
        })
        .chain(spec.regulators.iter().map(|id| Identity::regulator(&spec.federation, id)));
    for member in members {
        issue(&dir, &issuer, &member, &spec.hosts, now)?;
    }
    write_crl(&dir, &issuer, Vec::new(), 1, now)?;
    let subject_key: [u8; 32] = rand::random();
    write_secret(&dir.subject_key(), &format!("{}\n", hex::encode(subject_key)))?;
    init_directory(&dir, &spec.federation)?;
    Ok(dir)
}

/// Makes the authority's directory key and a first, empty edition (serial 1) of the directory.
fn init_directory(dir: &PkiDir, federation: &str) -> Result<(), PkiError> {
    use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey};
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let pem =
        key.to_pkcs8_pem(LineEnding::LF).map_err(|e| PkiError::Invalid(format!("encoding directory key: {e}")))?;
    write_secret(&dir.directory_key(), &pem)?;
    let name = crate::net::directory::origin(federation);
    let vkey = crate::audit::checkpoint::verifier_key(&name, &key.verifying_key());
    write_public(&dir.directory_verifier(), &format!("{vkey}\n"))?;
    let mut first = Directory::new(federation);
    first.serial = 1;
    write_atomically(&dir.directory(), &first.sign(&key))
}

/// The directory in force in `dir`, checked against the authority's own verifier key.
pub fn read_directory(dir: &PkiDir, federation: &str) -> Result<Directory, PkiError> {
    let verifier = read(&dir.directory_verifier())?;
    Directory::load(&dir.directory(), federation, verifier.trim()).map_err(|e| PkiError::Invalid(e.to_string()))
}

/// Publishes a new edition of the directory: the one in force with `change` applied, under the
/// next serial, signed with the authority's directory key, replacing the file atomically (a
/// node reading it meanwhile sees the old edition or the new one, never half of one).
pub fn edit_directory(
    dir: &PkiDir,
    federation: &str,
    change: impl FnOnce(&mut Directory) -> Result<(), String>,
) -> Result<Directory, PkiError> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let mut next = read_directory(dir, federation)?;
    change(&mut next).map_err(PkiError::Invalid)?;
    next.serial += 1;
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&read(&dir.directory_key())?)
        .map_err(|e| PkiError::Invalid(format!("{}: {e}", dir.directory_key().display())))?;
    let note = next.sign(&key);
    // What is written must open: a change that breaks the directory's rules is refused here.
    let verifier = read(&dir.directory_verifier())?;
    Directory::open(&note, federation, verifier.trim()).map_err(|e| PkiError::Invalid(e.to_string()))?;
    write_atomically(&dir.directory(), &note)?;
    Ok(next)
}

/// Writes `text` to a temporary file beside `path`, syncs it and renames it over `path`.
fn write_atomically(path: &Path, text: &str) -> Result<(), PkiError> {
    let tmp = path.with_extension("tmp");
    let io = |source| PkiError::Io { path: path.to_owned(), source };
    let mut f = fs::File::create(&tmp).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

/// Issues one member's certificate and key (and, for institutions, a checkpoint key).
fn issue(
    dir: &PkiDir,
    issuer: &Issuer<'_, KeyPair>,
    member: &Identity,
    hosts: &[String],
    now: OffsetDateTime,
) -> Result<(), PkiError> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, member.to_string());
    p.distinguished_name.push(DnType::OrganizationName, member.federation.clone());
    let uri = member.spiffe_uri().try_into()?;
    p.subject_alt_names = vec![SanType::URI(uri)];
    if member.role == Role::Node {
        p.subject_alt_names.push(SanType::DnsName("localhost".try_into()?));
        p.subject_alt_names.push(SanType::IpAddress([127, 0, 0, 1].into()));
        for h in hosts {
            p.subject_alt_names.push(SanType::DnsName(h.clone().try_into()?));
        }
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    } else {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + LEAF_VALIDITY;
    p.serial_number = Some(random_serial());
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::Sha256;
    let cert = p.signed_by(&key, issuer)?;
    let files = match member.role {
        Role::Application => dir.app(&member.id, &member.app),
        role => dir.member(role, &member.id),
    };
    write_public(&files.cert, &cert.pem())?;
    write_secret(&files.key, &key.serialize_pem())?;
    if member.role == Role::Node {
        use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey};
        let log_key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let pem = log_key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| PkiError::Invalid(format!("encoding checkpoint key: {e}")))?;
        write_secret(&files.log_key, &pem)?;
        // The public half, as the verifier key string regulators give `bureau audit verify`.
        let origin = format!("{}/institution/{}", member.federation, member.id);
        let vkey = crate::audit::checkpoint::verifier_key(&origin, &log_key.verifying_key());
        write_public(&files.log_key.with_extension("pub"), &format!("{vkey}\n"))?;
        // A key of its own for witnessing peers' logs (C2SP tlog-cosignature: one key per role).
        let witness = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let pem = witness
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| PkiError::Invalid(format!("encoding witness key: {e}")))?;
        write_secret(&files.witness_key, &pem)?;
        let name = format!("{}/witness/{}", member.federation, member.id);
        let wkey = crate::audit::cosignature::witness_key(&name, &witness.verifying_key());
        write_public(&files.witness_key.with_extension("pub"), &format!("{wkey}\n"))?;
        // The institution's backups are encrypted to this recipient (`admin.backup_recipients`).
        use age::secrecy::ExposeSecret;
        let backup = age::x25519::Identity::generate();
        let recipient = backup.to_public();
        write_secret(
            &files.backup_key,
            &format!("# recipient: {recipient}\n{}\n", backup.to_string().expose_secret()),
        )?;
        write_public(&files.backup_key.with_extension("pub"), &format!("{recipient}\n"))?;
    }
    Ok(())
}

/// Issues application `name` of institution `institution` with the authority in `dir`: a new
/// certificate and key for one more of the institution's applications.
pub fn issue_app(dir: &PkiDir, federation: &str, institution: &str, name: &str) -> Result<MemberFiles, PkiError> {
    for id in [institution, name] {
        if !is_valid_member_id(id) {
            return Err(PkiError::Invalid(format!("bad id {id:?}: use 1-63 of [a-z0-9-]")));
        }
    }
    let ca_key = KeyPair::from_pem(&read(&dir.ca_key())?)?;
    let issuer = Issuer::from_ca_cert_pem(&read(&dir.ca_cert())?, ca_key)?;
    let member = Identity::application(federation, institution, name);
    issue(dir, &issuer, &member, &[], OffsetDateTime::now_utc())?;
    Ok(dir.app(institution, name))
}

/// Adds the certificate at `cert` to the CRL in `dir`, re-signed with a higher CRL number.
/// Returns the revoked serial, hex. Revoking an already revoked certificate is a no-op.
pub fn revoke(dir: &PkiDir, cert: &Path) -> Result<String, PkiError> {
    let pem = read(cert)?;
    let der =
        first_certificate_der(&pem).ok_or_else(|| PkiError::Invalid(format!("{}: no certificate", cert.display())))?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| PkiError::Invalid(format!("{}: {e}", cert.display())))?;
    let serial = parsed.tbs_certificate.raw_serial().to_vec();
    reissue_crl(dir, Some(&serial))?;
    Ok(hex::encode(serial))
}

/// Re-signs the CRL in `dir` with the same revocations, a higher CRL number and a fresh
/// `nextUpdate`, so nodes never run on an expired list: run it well inside the list's validity
/// (30 days), e.g. weekly. Returns the new CRL number.
pub fn refresh_crl(dir: &PkiDir) -> Result<u64, PkiError> {
    reissue_crl(dir, None)
}

/// Re-signs the CRL in `dir` with a higher number, adding `serial` (if not listed yet).
fn reissue_crl(dir: &PkiDir, serial: Option<&[u8]>) -> Result<u64, PkiError> {
    let crl_pem = read(&dir.crl())?;
    let crl_der =
        first_crl_der(&crl_pem).ok_or_else(|| PkiError::Invalid(format!("{}: no CRL", dir.crl().display())))?;
    let (_, crl) = x509_parser::parse_x509_crl(&crl_der)
        .map_err(|e| PkiError::Invalid(format!("{}: {e}", dir.crl().display())))?;
    let number = crl.crl_number().map(|n| n.to_u64_digits().first().copied().unwrap_or(0)).unwrap_or(0);
    let mut revoked: Vec<RevokedCertParams> = crl
        .iter_revoked_certificates()
        .map(|r| RevokedCertParams {
            serial_number: SerialNumber::from_slice(r.raw_serial()),
            revocation_time: r.revocation_date.to_datetime(),
            reason_code: None,
            invalidity_date: None,
        })
        .collect();
    let now = OffsetDateTime::now_utc();
    if let Some(serial) = serial.filter(|s| !revoked.iter().any(|r| r.serial_number.as_ref() == *s)) {
        revoked.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(serial),
            revocation_time: now,
            reason_code: Some(rcgen::RevocationReason::CessationOfOperation),
            invalidity_date: None,
        });
    }
    let ca_key = KeyPair::from_pem(&read(&dir.ca_key())?)?;
    let issuer = Issuer::from_ca_cert_pem(&read(&dir.ca_cert())?, ca_key)?;
    write_crl(dir, &issuer, revoked, number + 1, now)?;
    Ok(number + 1)
}

fn write_crl(
    dir: &PkiDir,
    issuer: &Issuer<'_, KeyPair>,
    revoked_certs: Vec<RevokedCertParams>,
    number: u64,
    now: OffsetDateTime,
) -> Result<(), PkiError> {
    let params = CertificateRevocationListParams {
        this_update: now - Duration::minutes(5),
        next_update: now + CRL_VALIDITY,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(issuer)?;
    // Written to a temporary file and renamed, so a node reloading the CRL never reads half.
    let tmp = dir.crl().with_extension("pem.tmp");
    write_public(&tmp, &crl.pem()?)?;
    fs::rename(&tmp, dir.crl()).map_err(|source| PkiError::Io { path: dir.crl(), source })
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // no leading zero byte, so the DER encoding keeps all 16 bytes
    SerialNumber::from_slice(&bytes)
}

/// The DER body of the first certificate in `pem` (PEM decoding by `rustls-pki-types`; a
/// damaged block gives `None`).
pub fn first_certificate_der(pem: &str) -> Option<Vec<u8>> {
    CertificateDer::from_pem_slice(pem.as_bytes()).ok().map(|d| d.to_vec())
}

/// The DER body of the first CRL in `pem`.
pub fn first_crl_der(pem: &str) -> Option<Vec<u8>> {
    CertificateRevocationListDer::from_pem_slice(pem.as_bytes()).ok().map(|d| d.to_vec())
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io { path: path.to_owned(), source })
}

fn write_public(path: &Path, text: &str) -> Result<(), PkiError> {
    fs::write(path, text).map_err(|source| PkiError::Io { path: path.to_owned(), source })
}

/// Writes a private key readable by its owner only (0600), never world-readable even briefly.
fn write_secret(path: &Path, text: &str) -> Result<(), PkiError> {
    let io = |source| PkiError::Io { path: path.to_owned(), source };
    let _ = fs::remove_file(path);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_members_with_private_keys_0600_and_revoke_grows_the_crl() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = PkiSpec {
            federation: "fed.test".into(),
            institutions: vec!["bank".into()],
            regulators: vec!["pbc".into()],
            apps: vec![],
            hosts: vec![],
        };
        let dir = init(&spec, tmp.path()).unwrap();
        let bank = dir.member(Role::Node, "bank");
        let identity = |path: &Path| {
            let der = first_certificate_der(&fs::read_to_string(path).unwrap()).unwrap();
            Identity::from_cert_der(&der).unwrap()
        };
        assert_eq!(identity(&bank.cert), Identity::node("fed.test", "bank"));
        let cli = dir.member(Role::Application, "bank");
        assert_eq!(identity(&cli.cert), Identity::application("fed.test", "bank", "cli"));
        assert!(!cli.log_key.exists(), "applications sign no checkpoints");
        let mobile = issue_app(&dir, "fed.test", "bank", "mobile").unwrap();
        assert_eq!(identity(&mobile.cert), Identity::application("fed.test", "bank", "mobile"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in [
                bank.key.clone(),
                bank.log_key.clone(),
                bank.backup_key.clone(),
                cli.key.clone(),
                mobile.key,
                dir.ca_key(),
                dir.subject_key(),
            ] {
                let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", key.display());
            }
        }
        let count = |dir: &PkiDir| {
            let der = first_crl_der(&fs::read_to_string(dir.crl()).unwrap()).unwrap();
            let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
            crl.iter_revoked_certificates().count()
        };
        assert_eq!(count(&dir), 0);
        revoke(&dir, &bank.cert).unwrap();
        revoke(&dir, &bank.cert).unwrap();
        assert_eq!(count(&dir), 1);
        revoke(&dir, &dir.member(Role::Regulator, "pbc").cert).unwrap();
        assert_eq!(count(&dir), 2);
    }

    #[test]
    fn pem_is_read_by_pki_types_and_a_damaged_or_misplaced_block_is_refused() {
        use crate::net::tls::{TlsFiles, TlsMaterial};
        let tmp = tempfile::tempdir().unwrap();
        let spec = PkiSpec {
            federation: "fed.test".into(),
            institutions: vec!["bank".into()],
            regulators: vec![],
            apps: vec![],
            hosts: vec![],
        };
        let dir = init(&spec, tmp.path()).unwrap();
        let bank = dir.member(Role::Node, "bank");
        let files = |cert: &Path, key: &Path| TlsFiles {
            ca: dir.ca_cert(),
            cert: cert.to_owned(),
            key: key.to_owned(),
            crl: Some(dir.crl()),
        };
        TlsMaterial::load(&files(&bank.cert, &bank.key)).unwrap();
        let err = |f: TlsFiles| TlsMaterial::load(&f).unwrap_err().to_string();
        // A certificate where the key should be, a key where the certificate should be.
        assert!(
            err(files(&bank.cert, &bank.cert)).contains("no private key"),
            "{}",
            err(files(&bank.cert, &bank.cert))
        );
        assert!(err(files(&bank.key, &bank.key)).contains("no certificate"));
        // A damaged body (bad base64 inside the armour) is refused, not skipped.
        let pem = fs::read_to_string(&bank.cert).unwrap();
        let broken = tmp.path().join("broken.pem");
        let mut lines: Vec<&str> = pem.lines().collect();
        lines[2] = "!!!!not base64!!!!";
        fs::write(&broken, lines.join("\n")).unwrap();
        assert!(!err(files(&broken, &bank.key)).contains("no certificate"));
        assert_eq!(first_certificate_der(&lines.join("\n")), None);
        // The CRL reader finds no CRL in a certificate file, and the certificate reader none in a CRL.
        assert_eq!(first_crl_der(&pem), None);
        assert_eq!(first_certificate_der(&fs::read_to_string(dir.crl()).unwrap()), None);
    }
}

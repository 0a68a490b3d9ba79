//! The test node's images, written offline as OCI image archives (an OCI image layout in
//! a tar, which `ctr images import` reads) and imported into containerd's `k8s.io`
//! namespace, where the CRI plugin finds them with `imagePullPolicy: IfNotPresent`. No
//! registry is involved.
//!
//! Each image is one uncompressed layer. The agent and fixture images copy what the
//! Dockerfile's `gcr.io/distroless/static-debian12` base gives a static binary (the
//! users `root`, `nobody` and `nonroot` in `/etc/passwd` and `/etc/group`, a
//! world-writable `/tmp`, the CA bundle and `SSL_CERT_FILE`, no shell), so the agent image
//! runs what `make image` ships: `/usr/local/bin/procshot` as its entrypoint. What this
//! cannot show: distroless' timezone data and Debian package metadata are left out
//! (procshot reads neither).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, Os, RootFsBuilder, Sha256Digest,
};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// The PATH of the distroless images.
const DISTROLESS_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Where Debian (and distroless) keep the CA bundle.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// One image to build: its name as pods name it, the files of its single layer, and its
/// configuration.
#[derive(Debug, Clone)]
pub struct Image {
    /// Full reference (`ghcr.io/procshot/procshot:0.1.0`).
    pub name: String,
    /// User the image runs as (`""` for root, `"65532:65532"`).
    pub user: String,
    /// The entrypoint.
    pub entrypoint: Vec<String>,
    /// Environment variables (`KEY=VALUE`).
    pub env: Vec<String>,
    files: Vec<LayerEntry>,
}

#[derive(Debug, Clone)]
enum LayerEntry {
    Dir {
        path: String,
        mode: u32,
        owner: u64,
    },
    File {
        path: String,
        mode: u32,
        owner: u64,
        contents: FileContents,
    },
}

#[derive(Debug, Clone)]
enum FileContents {
    Bytes(Vec<u8>),
    Host(PathBuf),
}

impl Image {
    /// An image with only `binary` at `/` + `at`, for the sandbox (pause) image.
    pub fn bare(name: &str, binary: &Path, at: &str, user: &str) -> Self {
        let mut image = Self {
            name: name.to_string(),
            user: user.to_string(),
            entrypoint: vec![at.to_string()],
            env: Vec::new(),
            files: Vec::new(),
        };
        image.add_binary(binary, at);
        image
    }

    /// An image on the distroless static base, running `entrypoint` as `user`.
    pub fn distroless_static(name: &str, user: &str, entrypoint: &str) -> Self {
        let passwd = "root:x:0:0:root:/root:/sbin/nologin\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
                      nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
        let group = "root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n";
        let mut image = Self {
            name: name.to_string(),
            user: user.to_string(),
            entrypoint: vec![entrypoint.to_string()],
            env: vec![
                DISTROLESS_PATH.to_string(),
                format!("SSL_CERT_FILE={CA_BUNDLE}"),
            ],
            files: Vec::new(),
        };
        for (path, mode, owner) in [
            ("etc", 0o755, 0),
            ("etc/ssl", 0o755, 0),
            ("etc/ssl/certs", 0o755, 0),
            ("home", 0o755, 0),
            ("home/nonroot", 0o700, 65532),
            ("root", 0o700, 0),
            ("tmp", 0o1777, 0),
            ("usr", 0o755, 0),
            ("usr/local", 0o755, 0),
            ("usr/local/bin", 0o755, 0),
        ] {
            image.files.push(LayerEntry::Dir {
                path: path.to_string(),
                mode,
                owner,
            });
        }
        for (path, contents) in [
            ("etc/passwd", passwd),
            ("etc/group", group),
            (
                "etc/nsswitch.conf",
                "passwd: files\ngroup: files\nhosts: files dns\n",
            ),
        ] {
            image.files.push(LayerEntry::File {
                path: path.to_string(),
                mode: 0o644,
                owner: 0,
                contents: FileContents::Bytes(contents.as_bytes().to_vec()),
            });
        }
        image.files.push(LayerEntry::File {
            path: CA_BUNDLE.trim_start_matches('/').to_string(),
            mode: 0o644,
            owner: 0,
            contents: FileContents::Host(CA_BUNDLE.into()),
        });
        image
    }

    /// Adds the host file `binary` at `at` (absolute), mode 0755, owned by root.
    pub fn add_binary(&mut self, binary: &Path, at: &str) -> &mut Self {
        self.files.push(LayerEntry::File {
            path: at.trim_start_matches('/').to_string(),
            mode: 0o755,
            owner: 0,
            contents: FileContents::Host(binary.to_path_buf()),
        });
        self
    }

    /// Writes the image as an OCI image archive (`oci-layout`, `index.json`, `blobs/`) to
    /// `archive`.
    pub fn write_archive(&self, archive: &Path) -> Result<(), Error> {
        let layer = self.layer()?;
        let layer_digest = sha256_hex(&layer);
        let config = ImageConfigurationBuilder::default()
            .architecture(Arch::Amd64)
            .os(Os::Linux)
            .config(
                ConfigBuilder::default()
                    .user(self.user.clone())
                    .env(self.env.clone())
                    .entrypoint(self.entrypoint.clone())
                    .working_dir("/")
                    .build()
                    .map_err(oci_error)?,
            )
            .rootfs(
                RootFsBuilder::default()
                    .diff_ids(vec![format!("sha256:{layer_digest}")])
                    .build()
                    .map_err(oci_error)?,
            )
            .build()
            .map_err(oci_error)?;
        let config = serde_json::to_vec(&config).expect("an image configuration serializes");
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(descriptor(MediaType::ImageConfig, &config)?)
            .layers(vec![descriptor(MediaType::ImageLayer, &layer)?])
            .build()
            .map_err(oci_error)?;
        let manifest = serde_json::to_vec(&manifest).expect("a manifest serializes");
        let mut manifest_descriptor = descriptor(MediaType::ImageManifest, &manifest)?;
        let tag = self.name.rsplit_once(':').map_or("latest", |(_, tag)| tag);
        manifest_descriptor.set_annotations(Some(HashMap::from([
            ("io.containerd.image.name".to_string(), self.name.clone()),
            (
                "org.opencontainers.image.ref.name".to_string(),
                tag.to_string(),
            ),
        ])));
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(vec![manifest_descriptor])
            .build()
            .map_err(oci_error)?;
        let index = serde_json::to_vec(&index).expect("an index serializes");

        let file = File::create(archive).map_err(|e| Error::io("creating", archive, e))?;
        let mut tar = tar::Builder::new(file);
        let mut add = |path: &str, data: &[u8]| {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, path, data)
                .map_err(|e| Error::io("writing", archive, e))
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        add("index.json", &index)?;
        for blob in [&layer, &config, &manifest] {
            add(&format!("blobs/sha256/{}", sha256_hex(blob)), blob)?;
        }
        tar.into_inner()
            .and_then(|mut f| f.flush())
            .map_err(|e| Error::io("writing", archive, e))
    }

    /// The image's one layer, as an uncompressed tar.
    fn layer(&self) -> Result<Vec<u8>, Error> {
        let mut tar = tar::Builder::new(Vec::new());
        for entry in &self.files {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(0);
            match entry {
                LayerEntry::Dir { path, mode, owner } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_uid(*owner);
                    header.set_gid(*owner);
                    header.set_size(0);
                    tar.append_data(&mut header, format!("{path}/"), std::io::empty())
                        .map_err(|e| Error::io("adding to a layer", Path::new(path), e))?;
                }
                LayerEntry::File {
                    path,
                    mode,
                    owner,
                    contents,
                } => {
                    let data = match contents {
                        FileContents::Bytes(bytes) => bytes.clone(),
                        FileContents::Host(host) => {
                            std::fs::read(host).map_err(|e| Error::io("reading", host, e))?
                        }
                    };
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_uid(*owner);
                    header.set_gid(*owner);
                    header.set_size(data.len() as u64);
                    tar.append_data(&mut header, path, data.as_slice())
                        .map_err(|e| Error::io("adding to a layer", Path::new(path), e))?;
                }
            }
        }
        tar.into_inner()
            .map_err(|e| Error::io("finishing a layer of", Path::new(&self.name), e))
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn descriptor(media_type: MediaType, data: &[u8]) -> Result<Descriptor, Error> {
    let digest = Sha256Digest::from_str(&sha256_hex(data)).map_err(oci_error)?;
    Ok(Descriptor::new(media_type, data.len() as u64, digest))
}

fn oci_error(error: impl std::fmt::Display) -> Error {
    Error::Image(error.to_string())
}

//! Which forms a step writes: the keystore and combined PEM follow the leaf's chain (made
//! whenever the step writes the certificate: here when it also writes a key made here, else
//! on the node, from the new version's chain and the key there, made there or carried over
//! as the prune of a cross-signed rotation does), the truststore follows the trust bundle
//! (written whenever the bundle is, from exactly the bundle's certificates, foreign ones
//! kept by the same `bundle_foreign` rule). So a store is always the PEM file it stands
//! for, in the same version of the node's set.

use super::{FileChange, FileKind, MaterialError, NodeBase};
use crate::inventory::{Node, NodePaths};
use crate::stores::{
    combined_pem::CombinedPem, keystore_form, leaf_contents, trust_contents, truststore_form,
    Password, StoreError, StoreForm, DEFAULT_TRUSTSTORE_PASSWORD,
};

/// The password of the stores `plan --check` makes and opens (never written to a node).
pub const SIMULATION_PASSWORD: &str = "certroll-simulation";

/// What a node serves and trusts as the simulator's handshake sees it: from its stores
/// where it has them (a store stands for its PEM file), else from the PEM files. `get`
/// reads a file of the simulated node. Returns (bundle, chain, key), PEM.
pub fn served(
    node: &Node,
    paths: &NodePaths,
    get: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let password = Password::new(SIMULATION_PASSWORD);
    let pem_of = |tag: &str, ders: &[Vec<u8>]| -> Vec<u8> {
        ders.iter()
            .map(|d| pem::encode(&pem::Pem::new(tag, d.clone())))
            .collect::<String>()
            .into_bytes()
    };
    let mut bundle = get(&paths.trust_bundle).unwrap_or_default();
    let mut chain = get(&paths.cert).unwrap_or_default();
    let mut key = get(&paths.key).unwrap_or_default();
    if let Some(bytes) = paths.truststore.as_deref().and_then(get) {
        let form = truststore_form(node.stores.truststore_format, node.stores.pkcs12_profile);
        // A store the simulation cannot open serves nothing, as it would on the node.
        let anchors = form
            .read(&bytes, &password)
            .map(|c| c.anchors)
            .unwrap_or_default();
        let ders: Vec<Vec<u8>> = anchors
            .into_iter()
            .filter(|a| a.java_trusted)
            .map(|a| a.der)
            .collect();
        bundle = pem_of("CERTIFICATE", &ders);
    }
    let leaf: Option<(Box<dyn StoreForm>, Vec<u8>)> = match (&paths.keystore, &paths.combined_pem) {
        (Some(p), _) => get(p).map(|b| (keystore_form(node.stores.pkcs12_profile), b)),
        (None, Some(p)) => get(p).map(|b| (Box::new(CombinedPem) as Box<dyn StoreForm>, b)),
        (None, None) => None,
    };
    if let Some((form, bytes)) = leaf {
        let held = form.read(&bytes, &password).unwrap_or_default();
        chain = pem_of("CERTIFICATE", &held.chain);
        key = held
            .key
            .map(|k| pem_of("PRIVATE KEY", std::slice::from_ref(&*k)))
            .unwrap_or_default();
    }
    (bundle, chain, key)
}

/// The password a node's stores are written and read with: its `store_password_file`'s,
/// else (a truststore only; the inventory refuses a keystore without one) `changeit`.
pub fn password_for(node: &Node, base: &NodeBase) -> Option<Password> {
    match (&base.store_password, &node.stores.store_password_file) {
        (Some(p), _) => Some(p.clone()),
        (None, None) => Some(Password::new(DEFAULT_TRUSTSTORE_PASSWORD)),
        (None, Some(_)) => None,
    }
}

/// Why a form has no password to be made with.
fn no_password(form: &'static str) -> StoreError {
    StoreError::Render {
        form,
        why: "its password was not read from the node's store_password_file".into(),
    }
}

/// The keystore or combined PEM (`kind`) at `path` of `node`, made from `key` and `chain`
/// (PEM) with the password of `base`.
fn render_leaf(
    kind: FileKind,
    path: &str,
    node: &Node,
    base: &NodeBase,
    key: &[u8],
    chain: &[u8],
) -> Result<Vec<u8>, MaterialError> {
    let form: Box<dyn StoreForm> = match kind {
        FileKind::Keystore => keystore_form(node.stores.pkcs12_profile),
        _ => Box::new(CombinedPem),
    };
    let fail = |source| MaterialError::Store {
        node: node.name.clone(),
        what: kind.label(),
        path: path.to_string(),
        source,
    };
    let password = password_for(node, base).ok_or_else(|| fail(no_password(form.name())))?;
    form.render(&leaf_contents(key, chain), &password)
        .map_err(fail)
}

/// The bytes of `path` among `out`, when a change writes them.
fn data(out: &[FileChange], path: &str) -> Option<Vec<u8>> {
    out.iter()
        .find(|c| c.path == path)
        .and_then(|c| c.data.clone())
}

/// Adds to `out` the forms of the node that follow its PEM changes in `out`.
pub fn add_forms(
    out: &mut Vec<FileChange>,
    node: &Node,
    paths: &NodePaths,
    base: &NodeBase,
) -> Result<(), MaterialError> {
    let node_key = out
        .iter()
        .any(|c| c.path == paths.key && c.node_key.is_some());
    let key = data(out, &paths.key).map(zeroize::Zeroizing::new);
    let chain = data(out, &paths.cert);
    let bundle = data(out, &paths.trust_bundle);
    let mut add = Vec::new();
    let mut assembled = Vec::new();
    let leaf_forms = [
        (FileKind::Keystore, paths.keystore.as_ref()),
        (FileKind::CombinedPem, paths.combined_pem.as_ref()),
    ];
    for (kind, path) in leaf_forms {
        let Some(path) = path else { continue };
        // The key never leaves the node (`key_source = "node"`), or the step rewrites only
        // the chain (the prune of a cross-signed rotation drops the cross certificate) and
        // the control host no longer holds the key: the form is made on the node, in the
        // new version, from its chain and the key there (made there, or carried over).
        if chain.is_some() && (node_key || key.is_none()) {
            assembled.push((kind, path.clone()));
            continue;
        }
        let (Some(key), Some(chain)) = (&key, &chain) else {
            continue;
        };
        add.push((
            kind,
            path.clone(),
            render_leaf(kind, path, node, base, key, chain)?,
        ));
    }
    if let (Some(path), Some(bundle)) = (&paths.truststore, &bundle) {
        let form = truststore_form(node.stores.truststore_format, node.stores.pkcs12_profile);
        let fail = |source| MaterialError::Store {
            node: node.name.clone(),
            what: "truststore",
            path: path.to_string(),
            source,
        };
        let password = password_for(node, base).ok_or_else(|| fail(no_password(form.name())))?;
        let bytes = form
            .render(&trust_contents(bundle), &password)
            .map_err(fail)?;
        add.push((FileKind::Truststore, path.clone(), bytes));
    }
    for (kind, path, bytes) in add {
        out.retain(|c| c.path != path);
        out.push(FileChange {
            kind,
            path,
            data: Some(bytes),
            node_key: None,
            assemble: false,
        });
    }
    for (kind, path) in assembled {
        out.retain(|c| c.path != path);
        out.push(FileChange {
            kind,
            path,
            data: None,
            node_key: None,
            assemble: true,
        });
    }
    Ok(())
}

/// What the node's script does with the forms a step makes there
/// ([`FileChange::assemble`]), for the simulation (`plan --check`), which holds every key
/// in memory: each is made from the step's chain and the key the node holds after the
/// step, the step's own if it writes one, else `held_key` (its key before the step), as
/// the script carries it into the new version.
pub fn assemble_simulated(
    out: &mut [FileChange],
    node: &Node,
    paths: &NodePaths,
    held_key: Option<&[u8]>,
    base: &NodeBase,
) -> Result<(), MaterialError> {
    let key = data(out, &paths.key)
        .or_else(|| held_key.map(<[u8]>::to_vec))
        .map(zeroize::Zeroizing::new);
    let chain = data(out, &paths.cert);
    for c in out.iter_mut().filter(|c| c.assemble && c.data.is_none()) {
        let (Some(key), Some(chain)) = (&key, &chain) else {
            return Err(MaterialError::Store {
                node: node.name.clone(),
                what: c.kind.label(),
                path: c.path.clone(),
                source: StoreError::Render {
                    form: c.kind.label(),
                    why: "the node holds no key and certificate to make it from".into(),
                },
            });
        };
        c.data = Some(render_leaf(c.kind, &c.path, node, base, key, chain)?);
        c.assemble = false;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::inventory::InventoryBuilder;
    use crate::materials::{changes_for, Generations};
    use crate::pki::new_ca;
    use crate::plan::{Action, ChainMode};

    /// lb1 → app1, app1 with a keystore, a truststore and a combined PEM (and, with
    /// `key_defaulted`, no `key` of its own); app1's id.
    fn with_stores(key_defaulted: bool) -> (crate::inventory::Inventory, crate::inventory::NodeId) {
        let mut inv = InventoryBuilder::new().link("lb1", "app1").build();
        let id = inv.node_id("app1").unwrap();
        let node = &mut inv.nodes[id];
        node.stores.keystore = Some("nodes/app1/keystore.p12".into());
        node.stores.truststore = Some("nodes/app1/truststore.p12".into());
        node.stores.combined_pem = Some("nodes/app1/combined.pem".into());
        node.stores.store_password_file = Some("/etc/app/pass".into());
        node.stores.key_defaulted = key_defaulted;
        (inv, id)
    }

    #[test]
    fn the_stores_follow_the_pem_files_they_stand_for() {
        let (inv, id) = with_stores(true);
        let (spec, node) = (&inv.cas[0], &inv.nodes[id]);
        let paths = node.paths(&spec.name);
        assert!(paths.key_in_store);
        let now = OffsetDateTime::now_utc();
        let (g1, g2) = (new_ca(spec, 1, now).unwrap(), new_ca(spec, 2, now).unwrap());
        let gens = Generations {
            current: &g1,
            next: Some(&g2),
            cross: None,
        };
        let base = NodeBase {
            store_password: Some(Password::new("pw")),
            ..NodeBase::default()
        };
        let plain = ChainMode::Plain;
        let install = changes_for(&[Action::Install], node, spec, gens, plain, &base, now).unwrap();
        let kinds: Vec<FileKind> = install.iter().map(|c| c.kind).collect();
        for k in [
            FileKind::Keystore,
            FileKind::Truststore,
            FileKind::CombinedPem,
        ] {
            assert!(kinds.contains(&k), "{k:?} in {kinds:?}");
        }
        let get = |kind| {
            install
                .iter()
                .find(|c| c.kind == kind)
                .unwrap()
                .data
                .clone()
                .unwrap()
        };
        let ks = keystore_form(node.stores.pkcs12_profile)
            .read(&get(FileKind::Keystore), &Password::new("pw"))
            .unwrap();
        let pem = CombinedPem
            .read(&get(FileKind::CombinedPem), &Password::new(""))
            .unwrap();
        assert_eq!(ks.key, pem.key, "one key in both forms");
        assert_eq!(ks.chain, pem.chain);

        // A trust-add writes the bundle and the truststore, never the leaf's forms.
        let add = changes_for(&[Action::TrustAdd], node, spec, gens, plain, &base, now).unwrap();
        let kinds: Vec<FileKind> = add.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [FileKind::TrustBundle, FileKind::Truststore]);

        // The simulator's handshakes take what the stores hold, not the PEM files: with
        // PEM files that say something else, `served` still gives the stores' contents.
        let mut files = std::collections::HashMap::new();
        let sim = Password::new(SIMULATION_PASSWORD);
        for (kind, path) in [
            (FileKind::Keystore, paths.keystore.clone().unwrap()),
            (FileKind::Truststore, paths.truststore.clone().unwrap()),
        ] {
            let contents = if kind == FileKind::Keystore {
                ks.clone()
            } else {
                crate::stores::StoreContents {
                    anchors: crate::stores::trust_contents(g2.anchor().as_bytes()).anchors,
                    ..Default::default()
                }
            };
            let form = crate::stores::read::form_of(node, kind);
            files.insert(path, form.render(&contents, &sim).unwrap());
        }
        files.insert(paths.cert.clone(), b"not this chain".to_vec());
        files.insert(paths.trust_bundle.clone(), g1.anchor().as_bytes().to_vec());
        let (bundle, chain, key) = served(node, &paths, &|p| files.get(p).cloned());
        assert_eq!(crate::stores::pem_certs(&chain), ks.chain);
        assert_eq!(crate::stores::pem_key(&key), ks.key);
        assert_eq!(
            crate::stores::pem_certs(&bundle),
            crate::stores::pem_certs(g2.anchor().as_bytes()),
            "the truststore's anchors, not the bundle's"
        );

        // Without the password read from the node, nothing is made.
        let e = changes_for(
            &[Action::Install],
            node,
            spec,
            gens,
            plain,
            &NodeBase::default(),
            now,
        )
        .unwrap_err();
        assert!(e.to_string().contains("store_password_file"), "{e}");
    }

    /// The prune of a cross-signed rotation used to rewrite only the certificate file: the
    /// keystore and combined PEM of a `key_source = "control"` node kept serving the
    /// retired cross certificate, since the control host no longer holds the key then.
    #[test]
    fn a_cross_signed_prune_remakes_the_keystore_and_combined_pem_without_the_cross_certificate() {
        let (inv, id) = with_stores(false);
        let (spec, node) = (&inv.cas[0], &inv.nodes[id]);
        let paths = node.paths(&spec.name);
        let now = OffsetDateTime::now_utc();
        let (g1, g2) = (new_ca(spec, 1, now).unwrap(), new_ca(spec, 2, now).unwrap());
        let cross = crate::pki::cross_sign(spec, &g2, &g1, now).unwrap();
        let gens = Generations {
            current: &g1,
            next: Some(&g2),
            cross: Some(&cross),
        };
        let base = NodeBase {
            store_password: Some(Password::new("pw")),
            ..NodeBase::default()
        };
        let cs = ChainMode::CrossSigned;
        let swap = changes_for(&[Action::LeafSwap], node, spec, gens, cs, &base, now).unwrap();
        let key = data(&swap, &paths.key).unwrap();
        let swapped = data(&swap, &paths.cert).unwrap();
        assert_eq!(crate::stores::pem_certs(&swapped).len(), 2, "[leaf, cross]");

        let pruned_base = NodeBase {
            chain: Some(swapped.clone()),
            ..base.clone()
        };
        let mut prune = changes_for(
            &[Action::TrustPrune],
            node,
            spec,
            gens,
            cs,
            &pruned_base,
            now,
        )
        .unwrap();
        for kind in [FileKind::Keystore, FileKind::CombinedPem] {
            let c = prune.iter().find(|c| c.kind == kind);
            assert!(
                c.is_some_and(|c| c.assemble && c.data.is_none() && c.node_key.is_none()),
                "{kind:?} is made on the node at the prune: {prune:?}"
            );
        }
        assert!(
            prune.iter().all(|c| c.kind != FileKind::Key),
            "the key stays"
        );

        // Made as the node makes them (the simulation): exactly the leaf, the same key.
        assemble_simulated(&mut prune, node, &paths, Some(&key), &pruned_base).unwrap();
        let leaf = crate::stores::pem_certs(&swapped)[0].clone();
        let ks = keystore_form(node.stores.pkcs12_profile)
            .read(
                &data(&prune, paths.keystore.as_deref().unwrap()).unwrap(),
                &Password::new("pw"),
            )
            .unwrap();
        let pem = CombinedPem
            .read(
                &data(&prune, paths.combined_pem.as_deref().unwrap()).unwrap(),
                &Password::new(""),
            )
            .unwrap();
        for held in [&ks, &pem] {
            assert_eq!(held.chain, vec![leaf.clone()], "the leaf alone");
            assert_eq!(held.key, crate::stores::pem_key(&key), "the carried key");
        }
        // Without a key to carry, the simulation refuses rather than drop the forms.
        let mut again = changes_for(
            &[Action::TrustPrune],
            node,
            spec,
            gens,
            cs,
            &pruned_base,
            now,
        )
        .unwrap();
        let e = assemble_simulated(&mut again, node, &paths, None, &pruned_base).unwrap_err();
        assert!(e.to_string().contains("keystore"), "{e}");
    }
}

//! One test per validation rule: the message, the hint, and the line and column of the
//! offending value (checked against the text found there).

use super::{ok, refused, with_base};

#[test]
fn unknown_node_in_a_link_suggests_the_closest_name() {
    let text = with_base("\n[[links]]\nclient = \"ap1\"\nserver = \"db1\"\n");
    refused(&text)
        .at(10, 10, "\"ap1\"")
        .says("link client \"ap1\" is not a node")
        .hints("did you mean \"app1\"?");
}

#[test]
fn unknown_node_in_a_list_points_at_the_element() {
    let text = with_base("\n[[links]]\nclient = \"app1\"\nserver = [\"db1\", \"db9\"]\n");
    refused(&text)
        .at(11, 18, "\"db9\"")
        .says("link server \"db9\" is not a node")
        .hints("did you mean \"db1\"?");
}

#[test]
fn self_link_is_refused() {
    let text = with_base("\n[[links]]\nclient = [\"app1\", \"db1\"]\nserver = [\"db1\"]\n");
    refused(&text)
        .at(11, 11, "\"db1\"")
        .says("link db1 → db1 joins node db1 to itself");
}

#[test]
fn duplicate_link_names_both_positions() {
    let text = with_base(
        "\n[[links]]\nclient = \"app1\"\nserver = \"db1\"\n\n[[links]]\nclient = [\"app1\"]\nserver = [\"db1\"]\nmutual = true\n",
    );
    refused(&text)
        .at(15, 11, "\"db1\"")
        .says("duplicate link app1 → db1 over CA internal")
        .says("(first at /srv/fleet/certroll.toml:11:10)");
}

#[test]
fn unknown_ca_in_a_link() {
    let text = with_base("\n[[links]]\nclient = \"app1\"\nserver = \"db1\"\nca = \"intrenal\"\n");
    refused(&text)
        .at(12, 6, "\"intrenal\"")
        .says("link app1 → db1 names unknown CA \"intrenal\"")
        .hints("did you mean \"internal\"?");
}

#[test]
fn link_without_ca_when_there_are_several() {
    let text = with_base("[ca.edge]\n\n[[links]]\nclient = \"app1\"\nserver = \"db1\"\n");
    refused(&text)
        .at(10, 1, "[[links]]")
        .says("link app1 → db1 has no ca, and there are several CAs: edge, internal")
        .hints("add ca = \"NAME\"");
}

#[test]
fn relative_remote_path_is_refused() {
    let text =
        "[ca.internal]\n[nodes.app1]\nssh = { host = \"10.0.0.1\" }\ncert = \"tls/cert.pem\"\n";
    refused(text)
        .at(4, 8, "\"tls/cert.pem\"")
        .says("cert \"tls/cert.pem\" of node app1 is a relative remote path")
        .hints("must be absolute");
}

#[test]
fn relative_remote_path_inherited_from_defaults_points_at_defaults() {
    let text =
        "[ca.internal]\n[defaults]\nkey = \"key.pem\"\n[nodes.app1]\nssh = { host = \"h\" }\n";
    refused(text)
        .at(3, 7, "\"key.pem\"")
        .says("key \"key.pem\" of node app1");
}

#[test]
fn via_to_an_unknown_node() {
    let text = "[ca.x]\n[nodes.app1]\nssh = { host = \"h\" }\nvia = \"bastoin\"\n[nodes.bastion]\nssh = { host = \"b\" }\n";
    refused(text)
        .at(4, 7, "\"bastoin\"")
        .says("node app1 has via = \"bastoin\", which is not a node")
        .hints("did you mean \"bastion\"?");
}

#[test]
fn via_loop_prints_the_loop() {
    let text = "[ca.x]\n[defaults]\nssh = { host = \"h\" }\n[nodes.a]\nvia = \"b\"\n[nodes.b]\nvia = \"a\"\n[nodes.c]\nvia = \"a\"\n";
    refused(text).at(5, 7, "\"b\"").says("via loop: a → b → a");
    let text = "[ca.x]\n[nodes.a]\nssh = { host = \"h\" }\nvia = \"a\"\n";
    refused(text).at(4, 7, "\"a\"").says("via loop: a → a");
}

#[test]
fn via_on_a_local_node() {
    let text = with_base("[nodes.web]\nvia = \"app1\"\n");
    refused(&text)
        .at(9, 7, "\"app1\"")
        .says("node web is local but has via = \"app1\"")
        .hints("remove via");
}

#[test]
fn via_to_a_local_node() {
    let text =
        with_base("[nodes.remote]\ntransport = \"ssh\"\nssh = { host = \"h\" }\nvia = \"app1\"\n");
    refused(&text)
        .at(11, 7, "\"app1\"")
        .says("node remote is reached via app1, which is a local node");
}

#[test]
fn missing_ssh_host_points_at_the_node() {
    let text =
        "[ca.x]\n[defaults]\nssh = { user = \"ops\" }\n\n[nodes.app1]\nssh = { port = 2222 }\n";
    refused(text)
        .at(6, 1, "ssh")
        .says("node app1 is reached over ssh but has no ssh.host")
        .hints("transport = \"local\"");
    let text = "[ca.x]\n\n[nodes.app1]\n";
    refused(text)
        .at(3, 8, "app1]")
        .says("node app1 is reached over ssh");
}

#[test]
fn bad_durations() {
    let text = with_base("[nodes.slow]\nconfirm_timeout = \"5 minutes\"\n");
    refused(&text)
        .at(9, 19, "\"5 minutes\"")
        .says("bad confirm_timeout for node slow: invalid duration \"5 minutes\"");
    let text = "[ca.internal]\nvalidity = \"10\"\n";
    refused(text)
        .at(2, 12, "\"10\"")
        .says("bad validity for CA internal")
        .says("the unit is missing")
        .hints("\"90d\"");
}

#[test]
fn lifetimes_must_nest() {
    let text = "[ca.internal]\nvalidity = \"1y\"\nleaf_validity = \"2y\"\n";
    refused(text)
        .at(3, 17, "\"2y\"")
        .says("leaf_validity 2y of CA internal is not shorter than its validity 1y")
        .hints("renew_before < leaf_validity < validity");
    let text = "[ca.internal]\nleaf_validity = \"30d\"\n";
    refused(text)
        .at(2, 17, "\"30d\"")
        .says("renew_before 30d of CA internal is not shorter than its leaf_validity 30d");
}

#[test]
fn bad_key_algorithm() {
    let text = "[ca.internal]\nkey_algorithm = \"rsa-1024\"\n";
    refused(text)
        .at(2, 17, "\"rsa-1024\"")
        .says("unknown key_algorithm \"rsa-1024\" for CA internal")
        .hints("ecdsa-p256 (the default), ecdsa-p384, ed25519");
}

#[test]
fn bad_strategy() {
    let text = "[ca.internal]\nstrategy = \"single\"\n";
    refused(text)
        .at(2, 12, "\"single\"")
        .says("unknown strategy \"single\" for CA internal")
        .hints("\"phased\" (the default, any topology) or \"ordered\"");
}

#[test]
fn bad_chain() {
    let text = "[ca.internal]\nchain = \"cross\"\n";
    refused(text)
        .at(2, 9, "\"cross\"")
        .says("unknown chain \"cross\" for CA internal")
        .hints("\"plain\" (the default) or \"cross-signed\"");
}

#[test]
fn two_cas_at_the_same_path_need_ca_in_the_paths() {
    let text = r#"[ca.a]
[ca.b]
[defaults]
ssh = { host = "h" }
trust_bundle = "/etc/tls/{node}/ca.pem"
[nodes.x]
[nodes.y]
[[links]]
client = "x"
server = "y"
ca = "a"
[[links]]
client = "x"
server = "y"
ca = "b"
"#;
    refused(text)
        .at(5, 16, "\"/etc/tls/{node}/ca.pem\"")
        .says("node x keeps the trust_bundle of CA a and the trust_bundle of CA b at the same path /etc/tls/x/ca.pem")
        .hints("put {ca} in its trust_bundle path");
}

#[test]
fn one_file_for_two_roles_is_refused() {
    let text = "[ca.a]\n[defaults]\nssh = { host = \"h\" }\n[nodes.x]\nkey = \"/etc/tls/cert.pem\"\n[nodes.y]\n[[links]]\nclient = \"x\"\nserver = \"y\"\n";
    refused(text)
        .at(5, 7, "\"/etc/tls/cert.pem\"")
        .says("node x keeps its cert and its key for CA a at the same path /etc/tls/cert.pem");
}

#[test]
fn no_ca_defined() {
    refused("[nodes.a]\ntransport = \"local\"\n")
        .at(1, 1, "[nodes.a]")
        .says("no CA is defined")
        .hints("[ca.NAME]");
}

#[test]
fn unknown_keys_are_refused_everywhere() {
    refused("[ca.x]\nvaliditi = \"1y\"\n")
        .at(2, 1, "validiti")
        .says("unknown field `validiti`");
    refused("[ca.x]\n[nodes.a]\nssh = { hots = \"h\" }\n")
        .at(3, 9, "hots")
        .says("unknown field `hots`");
    refused("[ca.x]\n[[links]]\nclient = \"a\"\nserver = \"b\"\nmutal = true\n")
        .at(5, 1, "mutal")
        .says("unknown field `mutal`");
    refused("[ca.x]\n[nodez.a]\n")
        .at(2, 2, "nodez")
        .says("unknown field `nodez`")
        .hints("docs/inventory.md");
    refused("[ca.x]\n[certroll]\nstatedir = \"s\"\n")
        .at(3, 1, "statedir")
        .says("unknown field");
}

#[test]
fn a_misspelt_key_gets_a_did_you_mean_in_every_table_at_its_position() {
    refused("[ca.x]\nleaf_valdity = \"30d\"\n")
        .at(2, 1, "leaf_valdity")
        .says("unknown field `leaf_valdity`")
        .hints("did you mean `leaf_validity`?");
    refused("[ca.x]\n[certroll]\nstatedir = \"s\"\n")
        .at(3, 1, "statedir")
        .hints("did you mean `state_dir`?");
    refused("[ca.x]\n[defaults]\ntrust_bundel = \"/b\"\n")
        .at(3, 1, "trust_bundel")
        .hints("did you mean `trust_bundle`?");
    refused("[ca.x]\n[nodes.a]\ndns_name = [\"a\"]\n")
        .at(3, 1, "dns_name")
        .hints("did you mean `dns_names`?");
    refused("[ca.x]\n[nodes.a]\nssh = { hots = \"h\" }\n")
        .at(3, 9, "hots")
        .hints("did you mean `host`?");
    refused("[ca.x]\n[[links]]\nclient = \"a\"\nserver = \"b\"\nmutal = true\n")
        .at(5, 1, "mutal")
        .hints("did you mean `mutual`?");
    refused("[ca.x]\n[nodez.a]\n")
        .at(2, 2, "nodez")
        .hints("did you mean `nodes`?");
    // Nothing close: where every key is described, and no guess.
    let far = refused("[ca.x]\nzzzzzzzz = 1\n");
    far.at(2, 1, "zzzzzzzz").hints("docs/inventory.md");
    assert!(!far.hint.contains("did you mean"), "{}", far.hint);
}

#[test]
fn a_misspelt_transport_in_defaults_is_reported_at_defaults_not_as_a_nodes_problem() {
    let text = "[ca.x]\n[defaults]\ntransport = \"locl\"\n[nodes.app1]\n[nodes.db1]\n";
    let r = refused(text);
    r.at(3, 13, "\"locl\"")
        .says("unknown transport \"locl\" in [defaults]")
        .hints("did you mean \"local\"?");
    assert!(!r.message.contains("app1"), "{}", r.message);
    // A node's own typo stays the node's.
    refused("[ca.x]\n[defaults]\ntransport = \"local\"\n[nodes.app1]\ntransport = \"sssh\"\n")
        .at(5, 13, "\"sssh\"")
        .says("unknown transport \"sssh\" for node app1")
        .hints("did you mean \"ssh\"?");
}

#[test]
fn wrong_types_are_refused() {
    refused("[ca.x]\n[nodes.a]\nssh = { host = \"h\", port = \"22\" }\n")
        .at(3, 28, "\"22\"")
        .says("invalid type");
    refused("[ca.x]\n[[links]]\nclient = 7\nserver = \"b\"\n")
        .at(3, 10, "7")
        .says("a node name or a list of node names");
    refused("[ca.x]\n[[links]]\nserver = \"b\"\n")
        .at(2, 1, "[[links]]")
        .says("missing field `client`");
}

#[test]
fn syntax_errors_are_positioned() {
    refused("[ca.x]\nsubject = \"unterminated\n")
        .at(2, 24, "")
        .says("invalid inventory");
}

#[test]
fn bad_names_are_refused() {
    refused("[ca.x]\n[nodes.\"app 1\"]\ntransport = \"local\"\n")
        .at(2, 8, "\"app 1\"")
        .says("invalid node name \"app 1\"")
        .hints("letters, digits");
    refused("[ca.\"a/b\"]\n")
        .at(1, 5, "\"a/b\"")
        .says("invalid CA name \"a/b\"");
}

#[test]
fn unknown_transport() {
    let text = with_base("[nodes.q]\ntransport = \"sftp\"\n");
    refused(&text)
        .at(9, 13, "\"sftp\"")
        .says("unknown transport \"sftp\" for node q");
}

#[test]
fn empty_link_side() {
    let text = with_base("\n[[links]]\nclient = []\nserver = \"db1\"\n");
    refused(&text)
        .at(10, 10, "[]")
        .says("link has an empty client list");
}

#[test]
fn unknown_placeholder_in_a_path() {
    let text = with_base("[nodes.w]\ncert = \"tls/{name}/cert.pem\"\n");
    refused(&text)
        .at(9, 8, "\"tls/{name}")
        .says("unknown placeholder {name} in cert")
        .hints("{node} and {ca}");
}

#[test]
fn dns_names_that_are_not_host_names_point_at_the_entry() {
    let text = with_base("").replace(
        "[nodes.db1]\n",
        "[nodes.db1]\ndns_names = [\"db1.test\", \"db1; touch x\"]\n",
    );
    refused(&text)
        .at(8, 26, "\"db1; touch x\"")
        .says("dns_names entry \"db1; touch x\" of node db1 is not a host name or IP address")
        .hints("RFC 1123");
    let text =
        "[ca.x]\n[defaults]\ntransport = \"local\"\ndns_names = [\"*.example.test\"]\n[nodes.a]\n";
    refused(text)
        .at(4, 14, "\"*.example.test\"")
        .says("wildcards are not supported");
}

#[test]
fn subject_that_cannot_be_issued_is_refused_at_load() {
    refused("[ca.x]\nsubject = \"O=Example\"\n")
        .at(2, 11, "\"O=Example\"")
        .says("bad subject for CA x: subject \"O=Example\" has no CN attribute");
}

#[test]
fn durations_longer_than_1000y_are_refused() {
    refused("[ca.x]\nvalidity = \"10000y\"\n")
        .at(2, 12, "\"10000y\"")
        .says("longer than 1000y");
    let text = with_base("").replace(
        "[nodes.app1]\n",
        "[nodes.app1]\nconfirm_timeout = \"300000000000y\"\n",
    );
    refused(&text)
        .at(7, 19, "\"300000000000y\"")
        .says("longer than 1000y");
}

#[test]
fn two_nodes_sharing_a_file_on_one_host_are_refused_naming_both() {
    let text = "[ca.x]\n[nodes.db1]\nssh = { host = \"h\" }\n[nodes.db2]\nssh = { host = \"H\", port = 22 }\n\
                [nodes.app]\nssh = { host = \"a\" }\n[[links]]\nclient = \"app\"\nserver = [\"db1\", \"db2\"]\n";
    refused(text)
        .at(4, 8, "db2")
        .says("nodes db1 and db2 keep a file at the same path /etc/tls/ca.pem on host H port 22")
        .says("(first at /srv/fleet/certroll.toml:2:8)")
        .hints("{node}");
    // The same paths on other hosts or ports are other files.
    super::ok(&text.replace("host = \"H\", port = 22", "host = \"h\", port = 2222"));
    super::ok(&text.replace("host = \"H\"", "host = \"other\""));
}

#[test]
fn bad_tls_address_and_starttls_are_positioned() {
    let text = with_base("[nodes.db]\ntls_address = \"localhost\"\n");
    refused(&text)
        .at(9, 15, "\"localhost\"")
        .says("bad tls_address for node db: \"localhost\" has no port");
    let text = with_base("[nodes.db]\ntls_address = \"127.0.0.1:5432\"\nstarttls = \"pop3\"\n");
    refused(&text)
        .at(10, 12, "\"pop3\"")
        .says("unknown starttls \"pop3\" for node db")
        .hints("accepted values: \"none\", \"postgres\", \"mysql\", \"smtp\", \"imap\", \"ldap\"");
}

#[test]
fn an_unknown_starttls_gets_did_you_mean_and_the_accepted_values() {
    let text = with_base("[nodes.db]\ntls_address = \"127.0.0.1:25\"\nstarttls = \"stmp\"\n");
    refused(&text)
        .at(10, 12, "\"stmp\"")
        .says("unknown starttls \"stmp\" for node db")
        .hints("did you mean \"smtp\"? (accepted values: \"none\", \"postgres\", \"mysql\"");
}

#[test]
fn tls_address_on_a_node_of_two_cas_is_refused() {
    let text = "[ca.a]\n[ca.b]\n[defaults]\ntransport = \"local\"\ntrust_bundle = \"t/{node}/{ca}/ca.pem\"\n\
                cert = \"t/{node}/{ca}/cert.pem\"\nkey = \"t/{node}/{ca}/key.pem\"\n\n[nodes.x]\n[nodes.db]\n\
                tls_address = \"127.0.0.1:5432\"\n\n[[links]]\nclient = \"x\"\nserver = \"db\"\nca = \"a\"\n\n\
                [[links]]\nclient = \"x\"\nserver = \"db\"\nca = \"b\"\n";
    refused(text)
        .at(11, 15, "\"127.0.0.1:5432\"")
        .says("node db has tls_address but takes part in links of CAs a and b")
        .hints("give it a confirm command");
}

#[test]
fn a_key_mode_that_lets_others_at_the_key_is_refused() {
    let text = with_base("key_mode = \"0666\"\n");
    refused(&text)
        .at(8, 12, "\"0666\"")
        .says("key_mode \"0666\" of node db1 lets other users at the private key and lets its group write it")
        .hints("\"0640\"");
    let text = with_base("").replace("[defaults]\n", "[defaults]\nkey_mode = \"0660\"\n");
    refused(&text)
        .at(4, 12, "\"0660\"")
        .says("key_mode \"0660\" of node app1 lets its group write the private key");
}

/// Two nodes on one machine whose software reads its key only from a keystore: their PEM
/// keys stay inside their stores, with no link at the default `key` path, so that path is
/// no file either of them keeps (found by the Tomcat and Java client test).
#[test]
fn two_local_nodes_whose_keys_stay_in_their_stores_do_not_share_the_default_key_path() {
    let text = "[ca.a]\n[defaults]\ntransport = \"local\"\n\
        trust_bundle = \"/srv/{node}/ca.pem\"\ncert = \"/srv/{node}/cert.pem\"\n\
        [nodes.tomcat1]\nkeystore = \"/srv/tomcat1/ks.p12\"\nstore_password_file = \"/srv/tomcat1/pw\"\n\
        [nodes.java1]\nkeystore = \"/srv/java1/ks.p12\"\nstore_password_file = \"/srv/java1/pw\"\n\
        [[links]]\nclient = \"java1\"\nserver = \"tomcat1\"\n";
    ok(text);
    // A key that is linked is a file at its path, and two of them still collide.
    let linked = text
        .replace(
            "[nodes.java1]\n",
            "[nodes.java1]\nkey = \"/etc/tls/key.pem\"\n",
        )
        .replace(
            "[nodes.tomcat1]\n",
            "[nodes.tomcat1]\nkey = \"/etc/tls/key.pem\"\n",
        );
    refused(&linked).says("keep a file at the same path /etc/tls/key.pem");
}

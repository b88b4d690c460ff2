// A Java TLS client for the real-software test (tests/real_software/java_client.rs), run as
// a single-file program: `java Client.java --host NAME --port N --keystore FILE
// --truststore FILE --truststore-type JKS|PKCS12 --password-file FILE [--max N] [--seconds S]`.
//
// Why it exists: Java software reads its key and trust from keystores, not PEM files. This
// client stands for it: for every request it reads the password file, loads the keystore
// (PKCS#12: key and chain) and the truststore from disk again, builds a new SSLContext,
// opens a new connection to 127.0.0.1 (the certificate's name checked against --host, as
// HTTPS does), presents its certificate, sends `GET /` and expects a 200 whose body is
// `ok`. One line per request on stdout: `ok <issuer of the served leaf>` or `fail <why>`.
// It stops when its standard input closes, after --max requests or after --seconds.
import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.X509Certificate;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

public class Client {
    public static void main(String[] argv) throws Exception {
        Map<String, String> a = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            a.put(argv[i], argv[i + 1]);
        }
        String host = need(a, "--host");
        int port = Integer.parseInt(need(a, "--port"));
        long max = Long.parseLong(a.getOrDefault("--max", "100000"));
        long seconds = Long.parseLong(a.getOrDefault("--seconds", "600"));
        AtomicBoolean stop = new AtomicBoolean(false);
        Thread stdin = new Thread(() -> {
            try {
                while (System.in.read() >= 0) {
                }
            } catch (Exception e) {
                // A closed or broken standard input means stop, as EOF does.
            }
            stop.set(true);
        });
        stdin.setDaemon(true);
        stdin.start();
        long end = System.nanoTime() + seconds * 1_000_000_000L;
        for (long n = 0; n < max && !stop.get() && System.nanoTime() < end; n++) {
            String line;
            try {
                line = "ok " + once(a, host, port);
            } catch (Exception e) {
                line = "fail " + describe(e);
            }
            System.out.println(line);
            System.out.flush();
        }
    }

    static String need(Map<String, String> a, String key) {
        String v = a.get(key);
        if (v == null) {
            System.err.println("Client.java: missing " + key);
            System.exit(64);
        }
        return v;
    }

    static String describe(Throwable e) {
        StringBuilder s = new StringBuilder(e.toString());
        for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
            // Java repeats a cause's message in its wrapper: name each message once.
            String m = c.getMessage();
            if (m == null || !s.toString().contains(m)) {
                s.append(" / caused by ").append(c);
            }
        }
        return s.toString().replace('\n', ' ');
    }

    static KeyStore load(String path, String type, char[] password) throws Exception {
        KeyStore ks = KeyStore.getInstance(type);
        try (InputStream in = new FileInputStream(path)) {
            ks.load(in, password);
        }
        return ks;
    }

    /** One request on a new connection with the stores as they are on disk now. */
    static String once(Map<String, String> a, String host, int port) throws Exception {
        char[] password = Files.readString(Path.of(need(a, "--password-file")), StandardCharsets.UTF_8)
                .strip().toCharArray();
        KeyStore keys = load(need(a, "--keystore"), "PKCS12", password);
        KeyStore trust = load(need(a, "--truststore"), a.getOrDefault("--truststore-type", "PKCS12"), password);
        if (trust.size() == 0) {
            throw new IllegalStateException("the truststore holds no certificate");
        }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(keys, password);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
        tmf.init(trust);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);

        Socket plain = new Socket();
        plain.connect(new InetSocketAddress("127.0.0.1", port), 30_000);
        plain.setSoTimeout(30_000);
        try (SSLSocket tls = (SSLSocket) ctx.getSocketFactory().createSocket(plain, host, port, true)) {
            SSLParameters params = tls.getSSLParameters();
            params.setEndpointIdentificationAlgorithm("HTTPS");
            tls.setSSLParameters(params);
            tls.startHandshake();
            X509Certificate leaf = (X509Certificate) tls.getSession().getPeerCertificates()[0];
            OutputStream out = tls.getOutputStream();
            out.write(("GET / HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            out.flush();
            ByteArrayOutputStream got = new ByteArrayOutputStream();
            tls.getInputStream().transferTo(got);
            String reply = got.toString(StandardCharsets.UTF_8);
            String status = reply.lines().findFirst().orElse("");
            String body = reply.contains("\r\n\r\n") ? reply.substring(reply.indexOf("\r\n\r\n") + 4).strip() : "";
            if (!status.startsWith("HTTP/1.1 200") || !body.equals("ok")) {
                throw new IllegalStateException("unexpected reply: " + status + " body " + body);
            }
            return leaf.getIssuerX500Principal().getName();
        }
    }
}

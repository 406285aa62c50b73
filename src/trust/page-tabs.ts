/**
 * The trust page's install tabs, one per kind of client, each with the command to
 * paste (one-liners.ts, the same the log and `registry-tls-proxy trust` print) and
 * what to do after it (Docker Desktop builds its CA bundle at start: restart it).
 */
import { markup, type SafeHTML } from './html.js';
import { installerOneLiner, type Platform } from './one-liners.js';

export interface ClientTab {
  id: string;
  title: string;
  body: SafeHTML;
}

/** The tabs for clients of `hostPort` that install the CA with SHA-256 `fingerprint`. */
export function clientTabs(hostPort: string, fingerprint: string): ClientTab[] {
  const command = (platform: Platform) =>
    markup`<pre><code>${installerOneLiner(platform, hostPort, fingerprint)}</code></pre>`;
  return [
    {
      id: 'linux',
      title: 'Linux: docker, containerd, podman',
      body: markup`<p>As root on each host that pulls or pushes. The installer refuses a CA with another fingerprint, then installs it for the clients it finds (docker, containerd, podman/skopeo/buildah) and the system store:</p>
${command('linux')}
<p class="note">docker and podman read the CA on the next pull: no restart. containerd reads it only when its CRI config sets <code>config_path = "/etc/containerd/certs.d"</code>; the installer says so when it does not.</p>`,
    },
    {
      id: 'macos',
      title: 'Docker Desktop on macOS',
      body: markup`<p>In Terminal (it asks for your password to add the CA to the System keychain):</p>
${command('macos')}
<p class="note">Then restart Docker Desktop: it reads the keychain when it starts.</p>`,
    },
    {
      id: 'windows',
      title: 'Docker Desktop on Windows',
      body: markup`<p>In PowerShell run as Administrator (adds the CA to the machine's Trusted Root Certification Authorities):</p>
${command('windows')}
<p class="note">Or double-click <a href="/ca.cer" download="ca.cer">ca.cer</a>, choose Install Certificate, Local Machine, and place it in Trusted Root Certification Authorities. Then restart Docker Desktop: it reads the store when it starts.</p>`,
    },
    {
      id: 'kubernetes',
      title: 'Kubernetes nodes',
      body: markup`<p>On the proxy's host (the command reads the CA from the proxy's configuration), with kubectl pointed at the cluster. It applies a DaemonSet that installs the CA into every node's containerd:</p>
${command('kubernetes')}
<p class="note">Check that the fingerprint in the DaemonSet is the one above.</p>`,
    },
    { id: 'browser', title: 'Browser and system store', body: browserTab(hostPort, fingerprint) },
  ];
}

/** Browsers: Chrome and Edge use the system store (on Linux an NSS database), Firefox its own. */
function browserTab(hostPort: string, fingerprint: string): SafeHTML {
  return markup`<p>Download <a href="/ca.crt" download="ca.crt">ca.crt</a> and check that its SHA-256 fingerprint reads <code class="fp">${fingerprint}</code>:</p>
<pre><code>curl -fsSk https://${hostPort}/ca.crt -o ca.crt &amp;&amp; openssl x509 -noout -fingerprint -sha256 -in ca.crt</code></pre>
<h3>Chrome, Chromium, Edge</h3>
<ul>
<li>Windows and macOS: they use the system store. Run the Docker Desktop tab's command, or double-click <a href="/ca.cer" download="ca.cer">ca.cer</a> (Windows), or open ca.crt in Keychain Access, add it to the System keychain and set it to Always Trust (macOS).</li>
<li>Linux: Settings, Privacy and security, Security, Manage certificates, Authorities (newer versions: Installed by you), Import ca.crt, and tick "Trust this certificate for identifying websites". Or in a shell (package libnss3-tools):</li>
</ul>
<pre><code>certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n 'registry ${hostPort}' -i ca.crt</code></pre>
<h3>Firefox</h3>
<p>Settings, Privacy &amp; Security, Certificates, View Certificates, Authorities, Import ca.crt, and tick "Trust this CA to identify websites". On Windows and macOS Firefox can use the system store instead: set <code>security.enterprise_roots.enabled</code> to true in about:config.</p>
<h3>System store (Linux)</h3>
<pre><code># Debian, Ubuntu, Alpine
sudo cp ca.crt /usr/local/share/ca-certificates/registry-tls-proxy.crt &amp;&amp; sudo update-ca-certificates
# RHEL, Fedora
sudo cp ca.crt /etc/pki/ca-trust/source/anchors/registry-tls-proxy.crt &amp;&amp; sudo update-ca-trust extract</code></pre>
<p class="note">Restart the browser afterwards (quit every window): browsers read the system store and the NSS database when they start.</p>`;
}

/**
 * The PowerShell script served at GET /install-ca.ps1 (Windows PowerShell 5.1 and later),
 * run by the one-liner of one-liners.ts from an elevated PowerShell:
 *
 *   powershell -NoProfile -Command { …; & ([scriptblock]::Create(…DownloadString('https://HOST:PORT/install-ca.ps1'))) -Fingerprint 'AB:CD:…' }
 *
 * Like install-ca.sh it trusts nothing it downloaded until a certificate has a fingerprint
 * the user gave. Unlike it, it installs only those certificates: verifying TLS by one
 * pinned CA alone takes a custom X509Chain in PowerShell 5.1, logic too large to keep
 * honest without a Windows machine to test on. During a CA rotation the user passes both
 * fingerprints (`-Fingerprint A,B`), which `registry-tls-proxy trust` prints.
 *
 * Kept to plain steps so installer-windows.test.ts can check them against the sh
 * installer on the same bytes: no PowerShell runs here. No backticks (PowerShell's
 * escape character would end this template literal) and no "%{" (fillTemplate's sh escape).
 */
import { fillTemplate, pinValues } from './installer-pin.js';

export function windowsInstallerScript(hostPort: string, what = "this registry's CA"): string {
  // In a single-quoted PowerShell string a quote is written twice.
  const values = pinValues('install-ca.ps1', hostPort, what);
  return fillTemplate(TEMPLATE, { ...values, WHAT_QUOTED: what.replaceAll("'", "''") });
}

const TEMPLATE = String.raw`# registry-tls-proxy: install @WHAT@ into the Windows trusted root store,
# after checking its SHA-256 fingerprint against the one(s) you were given.
param(
  [string[]]$Fingerprint = @(),
  [string]$Registry = '@REGISTRY@'
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2

function Stop-Install([string]$Message, [int]$Code = 1) {
  [Console]::Error.WriteLine('@SCRIPT@: ' + $Message)
  exit $Code
}

# AB:cd:... or abcd... (or "sha256 Fingerprint=AB:...") -> AB:CD:..., '' unless 32 bytes of hex:
# the same steps as colon_hex in install-ca.sh.
function ConvertTo-ColonHex([string]$Text) {
  $hex = $Text -replace '^[^=]*=', ''
  $hex = $hex -replace '[: ]', ''
  $hex = $hex -replace '\n+\z', ''
  $hex = $hex.ToUpperInvariant()
  if ($hex.Length -ne 64 -or $hex -cmatch '[^0-9A-F]') { return '' }
  return $hex -replace '..(?!$)', '$0:'
}

# SHA-256 of the certificate's DER, AB:CD:... (what openssl x509 -fingerprint -sha256 prints).
function Get-Sha256Fingerprint($Certificate) {
  $sha = [Security.Cryptography.SHA256]::Create()
  return [BitConverter]::ToString($sha.ComputeHash($Certificate.RawData)) -replace '-', ':'
}

if ($Fingerprint.Count -eq 0) {
  Stop-Install '-Fingerprint is required: without it anyone between you and the registry could hand you their CA' 2
}
$wanted = @($Fingerprint | ForEach-Object { $_ -split ',' } | ForEach-Object { ConvertTo-ColonHex $_ })
if ($wanted -contains '') { Stop-Install ('not a SHA-256 fingerprint: ' + ($Fingerprint -join ',')) 2 }
if ($Registry -match '\n' -or $Registry -cnotmatch '@HOST_PORT_ERE@') { Stop-Install ('not a host:port: ' + $Registry) 2 }
$port = [int]($Registry -replace '^.*:', '')
if ($port -lt 1 -or $port -gt 65535) { Stop-Install ('port out of range: ' + $Registry) 2 }

# The client cannot verify TLS yet: this download is checked by fingerprint instead.
$url = 'https://' + $Registry + '/@CA_FILE@'
[Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
$savedCallback = [Net.ServicePointManager]::ServerCertificateValidationCallback
[Net.ServicePointManager]::ServerCertificateValidationCallback = { $true }
try {
  $pem = (New-Object Net.WebClient).DownloadString($url)
} catch {
  Stop-Install ('cannot download ' + $url + ': ' + $_.Exception.Message)
} finally {
  [Net.ServicePointManager]::ServerCertificateValidationCallback = $savedCallback
}

$pattern = '-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----'
$served = @(foreach ($block in [regex]::Matches($pem, $pattern)) {
  New-Object Security.Cryptography.X509Certificates.X509Certificate2 -ArgumentList (, [Convert]::FromBase64String($block.Groups[1].Value))
})
if ($served.Count -eq 0) { Stop-Install ($url + ' holds no PEM certificate') }
$seen = @($served | ForEach-Object { Get-Sha256Fingerprint $_ })
$missing = @($wanted | Where-Object { $seen -notcontains $_ })
if ($missing.Count -gt 0) {
  [Console]::Error.WriteLine('@SCRIPT@: REFUSING the CA served at ' + $url + ': no certificate has the fingerprint you gave.')
  [Console]::Error.WriteLine('  you gave:  ' + ($missing -join ', '))
  [Console]::Error.WriteLine('  served:    ' + ($seen -join ', '))
  [Console]::Error.WriteLine('Someone may be intercepting the connection to ' + $Registry + ', or the fingerprint is wrong or out of date.')
  Stop-Install 'Nothing was installed.'
}

$principal = New-Object Security.Principal.WindowsPrincipal ([Security.Principal.WindowsIdentity]::GetCurrent())
$elevated = $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
if (-not $elevated) {
  Write-Warning 'not elevated: installing for the current user only (Windows asks you to confirm); run PowerShell as Administrator to trust it for every user'
}
foreach ($certificate in $served) {
  $fp = Get-Sha256Fingerprint $certificate
  if ($wanted -notcontains $fp) {
    Write-Output ('not installed: ' + $fp + ' (also served, but not a fingerprint you gave)')
    continue
  }
  $file = Join-Path ([IO.Path]::GetTempPath()) ('registry-tls-proxy-' + [guid]::NewGuid().ToString() + '.cer')
  [IO.File]::WriteAllBytes($file, $certificate.RawData)
  try {
    if ($elevated) {
      Import-Certificate -FilePath $file -CertStoreLocation Cert:\LocalMachine\Root | Out-Null
      Write-Output ('added ' + $fp + ' to Cert:\LocalMachine\Root')
    } else {
      Import-Certificate -FilePath $file -CertStoreLocation Cert:\CurrentUser\Root | Out-Null
      Write-Output ('added ' + $fp + ' to Cert:\CurrentUser\Root')
    }
  } finally {
    Remove-Item -LiteralPath $file -Force
  }
}
Write-Output ('done: https://' + $Registry + ' is trusted (@WHAT_QUOTED@)')
Write-Output 'Restart Docker Desktop (tray icon > Restart): it reads the Windows certificate store when it starts.'
`;

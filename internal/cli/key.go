package cli

import (
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"latchkey/internal/proof"
)

// Contractor-side environment variables.
const (
	// envKey is the default key file of "key new" and "key thumbprint".
	envKey = "LATCHKEY_KEY"
	// envContractorToken holds the contractor token "call" sends.
	envContractorToken = "LATCHKEY_CONTRACTOR_TOKEN"
	// defaultKeyFile is the key file when neither --out nor $LATCHKEY_KEY
	// names one.
	defaultKeyFile = "latchkey-dpop.key"
)

func keyCmd() *cobra.Command {
	return group("key", "Contractor side: make a proof-of-possession (DPoP) key and print thumbprints",
		keyNewCmd(), keyThumbprintCmd())
}

// keyInfo is the JSON form of a DPoP key or a certificate thumbprint.
type keyInfo struct {
	JKT  string `json:"jkt,omitempty"`
	X5T  string `json:"x5t,omitempty"`
	Alg  string `json:"alg,omitempty"`
	File string `json:"file"`
}

func keyNewCmd() *cobra.Command {
	var file, alg string
	var force bool
	c := &cobra.Command{
		Use:   "new [--out FILE] [--alg ES256|EdDSA] [--force]",
		Short: "Make a DPoP key pair; prints its thumbprint for the admin",
		Long: `Make a new DPoP (RFC 9449) private key, write it to FILE (default
$` + envKey + ` or ./` + defaultKeyFile + `) with mode 0600, and print its RFC 7638
thumbprint. Give the thumbprint (never the file) to your latchkey admin, who
binds your token to it with "latchkey token issue ... --bind dpop --jkt
THUMBPRINT"; then "latchkey call --key FILE" signs a proof per request.

The file is a PEM PKCS#8 private key ("-----BEGIN PRIVATE KEY-----"), ECDSA
P-256 for ES256 (the default) or Ed25519 for EdDSA, as openssl writes and
reads. An existing file is never overwritten unless --force.

stdout holds only the thumbprint, so that JKT=$(latchkey key new) works.`,
		Args: cobra.NoArgs,
	}
	out := addOutput(c, formatText, formatJSON)
	f := c.Flags()
	f.StringVar(&file, "out", "", "key file to write (default $"+envKey+" or ./"+defaultKeyFile+")")
	f.StringVar(&alg, "alg", proof.ES256, "signature algorithm: ES256 or EdDSA")
	f.BoolVar(&force, "force", false, "overwrite FILE if it exists")
	_ = c.RegisterFlagCompletionFunc("alg", cobra.FixedCompletions([]string{proof.ES256, proof.EdDSA}, cobra.ShellCompDirectiveNoFileComp))
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if alg != proof.ES256 && alg != proof.EdDSA {
			return usagef("--alg %q: want %s or %s", trunc(alg), proof.ES256, proof.EdDSA)
		}
		file = keyPath(file)
		k, err := proof.NewKey(alg)
		if err != nil {
			return err
		}
		b, err := k.MarshalPEM()
		if err != nil {
			return err
		}
		if err := writeSecret(file, b, force); err != nil {
			return err
		}
		info := keyInfo{JKT: k.Thumbprint(), Alg: k.Alg(), File: file}
		if out.json() {
			return writeJSON(cmd.OutOrStdout(), info)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s key to %s; give your admin this thumbprint for --bind dpop --jkt\n", k.Alg(), file)
		_, err = fmt.Fprintln(cmd.OutOrStdout(), info.JKT)
		return err
	}
	return c
}

func keyThumbprintCmd() *cobra.Command {
	var cert string
	c := &cobra.Command{
		Use:   "thumbprint [FILE] [--cert CERT.pem]",
		Short: "Print the thumbprint of a DPoP key, or of a client certificate",
		Long: `Print the RFC 7638 thumbprint (jkt) of the DPoP key in FILE (default
$` + envKey + ` or ./` + defaultKeyFile + `), as "key new" printed it: what the admin
passes to "token issue --bind dpop --jkt".

With --cert, print instead the RFC 8705 x5t#S256 thumbprint of the first
certificate in a PEM file (SHA-256 of its DER, base64url): what the admin
passes to "token issue --bind mtls --x5t".`,
		Args: cobra.MaximumNArgs(1),
	}
	out := addOutput(c, formatText, formatJSON)
	c.Flags().StringVar(&cert, "cert", "", "PEM certificate file: print its x5t#S256 instead")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		var info keyInfo
		var err error
		switch {
		case cert != "" && len(args) > 0:
			return usagef("give FILE or --cert, not both")
		case cert != "":
			info, err = certInfo(cert)
		default:
			file := ""
			if len(args) > 0 {
				file = args[0]
			}
			info, err = keyFileInfo(keyPath(file))
		}
		if err != nil {
			return err
		}
		if out.json() {
			return writeJSON(cmd.OutOrStdout(), info)
		}
		_, err = fmt.Fprintln(cmd.OutOrStdout(), info.JKT+info.X5T)
		return err
	}
	return c
}

// keyPath returns file, or the default key file if it is empty.
func keyPath(file string) string {
	if file != "" {
		return file
	}
	if env := os.Getenv(envKey); env != "" {
		return env
	}
	return defaultKeyFile
}

func keyFileInfo(file string) (keyInfo, error) {
	k, err := loadKey(file)
	if err != nil {
		return keyInfo{}, err
	}
	return keyInfo{JKT: k.Thumbprint(), Alg: k.Alg(), File: file}, nil
}

func certInfo(file string) (keyInfo, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return keyInfo{}, fmt.Errorf("--cert: %w", err)
	}
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return keyInfo{}, fmt.Errorf("--cert %s: no PEM certificate in it", file)
		}
		if block.Type == "CERTIFICATE" {
			return keyInfo{X5T: proof.CertThumbprint(block.Bytes), File: file}, nil
		}
	}
}

// loadKey reads a DPoP key file. Like ssh, it refuses a file that users
// other than its owner may read or write.
func loadKey(file string) (*proof.Key, error) {
	b, err := readPrivate(file)
	if err != nil {
		return nil, err
	}
	k, err := proof.ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", file, err)
	}
	return k, nil
}

// readPrivate reads a private key file, refusing one whose mode lets
// group or others access it.
func readPrivate(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("key file %s does not exist (make one with 'latchkey key new')", file)
		}
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s is not a regular file", file)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s is accessible by others (mode %04o): run chmod 600 %s", file, perm, file)
	}
	return io.ReadAll(io.LimitReader(f, 64<<10))
}

// writeSecret writes b to file with mode 0600. Without force an existing
// file is refused; with force it is replaced atomically.
func writeSecret(file string, b []byte, force bool) error {
	if !force {
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists: pass --force to replace it (tokens bound to its key stop working)", file)
		}
		if err != nil {
			return fmt.Errorf("write key: %w", err)
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			os.Remove(file)
			return fmt.Errorf("write key: %w", err)
		}
		return f.Close()
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".latchkey-key-*")
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file with mode 0600.
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	return nil
}

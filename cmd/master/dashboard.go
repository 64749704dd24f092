package main

import (
	"net/http"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/distq/distq/internal/dashboard"
	"github.com/distq/distq/internal/queue"
)

// dashboardCredential is what a dashboard login must give: the file of
// -dashboard-credential-file (or $DISTQ_DASHBOARD_CREDENTIAL_FILE), else
// the authkey.
func (m *Main) dashboardCredential(key []byte) ([]byte, string, error) {
	switch {
	case m.dashCredFile != "":
		c, err := dashboard.ReadCredential(m.dashCredFile, "-dashboard-credential-file")
		return c, "-dashboard-credential-file", err
	case os.Getenv(dashboard.EnvCredentialFile) != "":
		c, err := dashboard.ReadCredential(os.Getenv(dashboard.EnvCredentialFile), "$"+dashboard.EnvCredentialFile)
		return c, "$" + dashboard.EnvCredentialFile, err
	}
	return key, "the authkey", nil
}

// dashboardRoutes returns what adds the dashboard to the HTTP listener's
// mux; nil without -http-addr or with -dashboard=false.
func (m *Main) dashboardRoutes(b *queue.Broker, key []byte, log hclog.Logger) (func(*http.ServeMux), error) {
	if m.httpAddr == "" || !m.dashboard {
		return nil, nil
	}
	cred, from, err := m.dashboardCredential(key)
	if err != nil {
		return nil, err
	}
	d, err := dashboard.New(dashboard.Config{
		Controller: &dashboard.BrokerController{B: b},
		Credential: cred,
		Logger:     log,
		// On loopback, a Host that is another name is refused (DNS rebinding).
		LoopbackOnly: dashboard.IsLoopback(m.httpAddr),
	})
	if err != nil {
		return nil, err
	}
	log.Info("dashboard enabled", "path", dashboard.Path, "credential", from)
	return d.Register, nil
}

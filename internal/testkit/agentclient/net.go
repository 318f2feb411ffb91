package agentclient

import "net"

type netIP = net.IP

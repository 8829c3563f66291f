package agent

import "github.com/twmb/franz-go/pkg/kmsg"

const apiKeyApiVersions = 18

// apiRange is the versions of one API this agent serves.
type apiRange struct{ min, max int16 }

// apis lists every API the agent serves. Minimum versions are 0, as Kafka's; the maximums are the ones
// modern clients negotiate, capped where a later version needs a feature the agent does not have.
var apis = map[int16]apiRange{
	int16(kmsg.Produce):                 {0, 11}, // v12 is transactions v2 (KIP-890); v13 topic ids
	int16(kmsg.Fetch):                   {0, 16},
	int16(kmsg.ListOffsets):             {0, 8},
	int16(kmsg.Metadata):                {0, 12},
	int16(kmsg.ApiVersions):             {0, 4},
	int16(kmsg.CreateTopics):            {0, 7},
	int16(kmsg.DeleteTopics):            {0, 6},
	int16(kmsg.InitProducerID):          {0, 5},
	int16(kmsg.DescribeConfigs):         {0, 4},
	int16(kmsg.CreatePartitions):        {0, 3},
	int16(kmsg.IncrementalAlterConfigs): {0, 1},
	int16(kmsg.AlterConfigs):            {0, 2},
	int16(kmsg.DescribeCluster):         {0, 1},
	int16(kmsg.OffsetCommit):            {0, 8}, // v9 is KIP-848's member epoch
	int16(kmsg.OffsetFetch):             {0, 8},
	int16(kmsg.FindCoordinator):         {0, 6},
	int16(kmsg.JoinGroup):               {0, 9},
	int16(kmsg.Heartbeat):               {0, 4},
	int16(kmsg.LeaveGroup):              {0, 5},
	int16(kmsg.SyncGroup):               {0, 5},
	int16(kmsg.DescribeGroups):          {0, 5}, // v6 is KIP-1043's GROUP_ID_NOT_FOUND
	int16(kmsg.ListGroups):              {0, 4}, // v5 is KIP-848's group types
	int16(kmsg.DeleteGroups):            {0, 2},
	int16(kmsg.OffsetDelete):            {0, 0},
	int16(kmsg.OffsetForLeaderEpoch):    {0, 4},
	int16(kmsg.DeleteRecords):           {0, 2},
	int16(kmsg.SASLHandshake):           {0, 1},
	int16(kmsg.SASLAuthenticate):        {0, 2},
	int16(kmsg.DescribeProducers):       {0, 0},
	// Security administration (agent/security_admin.go).
	int16(kmsg.DescribeACLs):                 {0, 3},
	int16(kmsg.CreateACLs):                   {0, 3},
	int16(kmsg.DeleteACLs):                   {0, 3},
	int16(kmsg.DescribeClientQuotas):         {0, 1},
	int16(kmsg.AlterClientQuotas):            {0, 1},
	int16(kmsg.DescribeUserSCRAMCredentials): {0, 0},
	int16(kmsg.AlterUserSCRAMCredentials):    {0, 0},
}

func supported(key, version int16) bool {
	r, ok := apis[key]
	return ok && version >= r.min && version <= r.max
}

func maxVersion(key int16) int16 { return apis[key].max }

// servedVersions is the apis table as kwire.ParseRequest reads it, with the transaction APIs when the
// agent serves them (txn).
type servedVersions struct{ txn bool }

func (s servedVersions) Supported(key, version int16) bool {
	if r, ok := txnAPIs[key]; ok && s.txn {
		return version >= r.min && version <= r.max
	}
	return supported(key, version)
}

func (servedVersions) Max(key int16) int16 { return maxVersion(key) }

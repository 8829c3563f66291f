package agent

import (
	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const apiKeyApiVersions = 18

// apis lists every API the agent serves. Minimum versions are 0, as Kafka's; the maximums are the ones
// modern clients negotiate, capped where a later version needs a feature the agent does not have.
var apis = kwire.Versions{
	int16(kmsg.Produce):                 {Min: 0, Max: 11}, // v12 is transactions v2 (KIP-890); v13 topic ids
	int16(kmsg.Fetch):                   {Min: 0, Max: 16},
	int16(kmsg.ListOffsets):             {Min: 0, Max: 8},
	int16(kmsg.Metadata):                {Min: 0, Max: 12},
	int16(kmsg.ApiVersions):             {Min: 0, Max: 4},
	int16(kmsg.CreateTopics):            {Min: 0, Max: 7},
	int16(kmsg.DeleteTopics):            {Min: 0, Max: 6},
	int16(kmsg.InitProducerID):          {Min: 0, Max: 5},
	int16(kmsg.DescribeConfigs):         {Min: 0, Max: 4},
	int16(kmsg.CreatePartitions):        {Min: 0, Max: 3},
	int16(kmsg.IncrementalAlterConfigs): {Min: 0, Max: 1},
	int16(kmsg.DescribeCluster):         {Min: 0, Max: 1},
	int16(kmsg.OffsetCommit):            {Min: 0, Max: 8}, // v9 is KIP-848's member epoch
	int16(kmsg.OffsetFetch):             {Min: 0, Max: 8},
	int16(kmsg.FindCoordinator):         {Min: 0, Max: 6},
	int16(kmsg.JoinGroup):               {Min: 0, Max: 9},
	int16(kmsg.Heartbeat):               {Min: 0, Max: 4},
	int16(kmsg.LeaveGroup):              {Min: 0, Max: 5},
	int16(kmsg.SyncGroup):               {Min: 0, Max: 5},
	int16(kmsg.DescribeGroups):          {Min: 0, Max: 5}, // v6 is KIP-1043's GROUP_ID_NOT_FOUND
	int16(kmsg.ListGroups):              {Min: 0, Max: 4}, // v5 is KIP-848's group types
	int16(kmsg.DeleteGroups):            {Min: 0, Max: 2},
	int16(kmsg.OffsetDelete):            {Min: 0, Max: 0},
	int16(kmsg.OffsetForLeaderEpoch):    {Min: 0, Max: 4},
	int16(kmsg.DeleteRecords):           {Min: 0, Max: 2},
}
